// A small pool of helper threads for one RTRL step: the column strips of S are independent, so
// a large step (N^2 P multiply-adds) is split over threads strip by strip, and every element is
// computed exactly as on one thread (the results are the same bits whatever the thread count).
// Helpers spin briefly after a job, because the next step of a busy stream comes within
// microseconds, then sleep on a condition variable. One step at a time uses the pool; a second
// JavaScript thread calling meanwhile runs on its own thread alone.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LOB_RTRL_PAUSE() _mm_pause()
#else
#define LOB_RTRL_PAUSE() ((void)0)
#endif

#include "kernel.h"

namespace lobrtrl {
namespace {

struct Job {
  ParallelTask fn = nullptr;
  void* context = nullptr;
  int tasks = 0;
};

constexpr int kSpinRounds = 1 << 16;  // a few hundred microseconds of pause instructions

// The pool lives as long as the process and is never destroyed: a destructor of joinable
// std::threads at exit would call std::terminate (a replay or serve with kernel threads then
// ended in SIGABRT). The helpers end with the process, waiting on objects that outlive them.
std::mutex& poolMutex = *new std::mutex;  // held by the caller of a parallel step: one at a time
std::mutex& wakeMutex = *new std::mutex;
std::condition_variable& wake = *new std::condition_variable;
std::vector<std::thread>& helpers = *new std::vector<std::thread>;
std::atomic<uint64_t> generation{0};
std::atomic<int> nextTask{0};
std::atomic<int> busyHelpers{0};
std::atomic<int> sleepingHelpers{0};
std::atomic<bool> stopping{false};
Job job;
int configuredThreads = 1;

void runTasks(int worker) {
  for (int task = nextTask.fetch_add(1, std::memory_order_relaxed); task < job.tasks; task = nextTask.fetch_add(1, std::memory_order_relaxed)) {
    job.fn(job.context, task, worker);
  }
}

// `seen` is the generation when the helper was made: a job posted before the thread got to
// run still counts it as busy, so it must not take that job's generation as already seen.
void helperLoop(int worker, uint64_t seen) {
  for (;;) {
    int spins = 0;
    while (generation.load(std::memory_order_acquire) == seen && !stopping.load(std::memory_order_relaxed)) {
      if (++spins < kSpinRounds) {
        LOB_RTRL_PAUSE();
        continue;
      }
      std::unique_lock<std::mutex> lock(wakeMutex);
      sleepingHelpers.fetch_add(1, std::memory_order_relaxed);
      wake.wait(lock, [&] { return generation.load(std::memory_order_acquire) != seen || stopping.load(std::memory_order_relaxed); });
      sleepingHelpers.fetch_sub(1, std::memory_order_relaxed);
      spins = 0;
    }
    if (stopping.load(std::memory_order_relaxed)) return;
    seen = generation.load(std::memory_order_acquire);
    runTasks(worker);
    busyHelpers.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void stopHelpers() {
  {
    std::lock_guard<std::mutex> lock(wakeMutex);
    stopping.store(true);
  }
  wake.notify_all();
  for (std::thread& helper : helpers) helper.join();
  helpers.clear();
  stopping.store(false);
}

}  // namespace

void setParallelThreads(int threads) {
  std::lock_guard<std::mutex> lock(poolMutex);
  if (threads < 1) threads = 1;
  if (threads == configuredThreads) return;
  stopHelpers();
  configuredThreads = threads;
  const uint64_t now = generation.load(std::memory_order_acquire);
  for (int worker = 1; worker < threads; ++worker) helpers.emplace_back(helperLoop, worker, now);
}

int parallelThreads() { return configuredThreads; }

void parallelFor(int tasks, ParallelTask fn, void* context) {
  std::unique_lock<std::mutex> lock(poolMutex, std::try_to_lock);
  if (!lock.owns_lock() || helpers.empty() || tasks < 2) {
    for (int task = 0; task < tasks; ++task) fn(context, task, 0);
    return;
  }
  job = Job{fn, context, tasks};
  nextTask.store(0, std::memory_order_relaxed);
  busyHelpers.store(static_cast<int>(helpers.size()), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> wakeLock(wakeMutex);
    generation.fetch_add(1, std::memory_order_acq_rel);
  }
  if (sleepingHelpers.load(std::memory_order_relaxed) > 0) wake.notify_all();
  runTasks(0);
  while (busyHelpers.load(std::memory_order_acquire) != 0) LOB_RTRL_PAUSE();
}

}  // namespace lobrtrl
