// A small pool of helper threads for one RTRL step: the column strips of S are independent, so
// a large step (N^2 P multiply-adds) is split over threads strip by strip, and every element is
// computed exactly as on one thread (the results are the same bits whatever the thread count).
//
// The caller takes tasks itself and waits only for tasks a helper has actually taken, never for
// a helper to show up: on a loaded machine a descheduled helper then costs nothing (the caller
// does the work), where waiting for every helper to check in made a step take a whole
// scheduler slice. Each job lives in its own control block; a helper holds a reference to the
// block it took from, so a late helper only ever finds an exhausted job, never the next one
// half written. Blocks are recycled once nothing refers to them, so a warm pool allocates
// nothing per step. Helpers spin briefly after a job (the next step of a busy stream comes
// within microseconds), then sleep on a condition variable. One step at a time uses the pool;
// a second JavaScript thread calling meanwhile runs on its own thread alone.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
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

struct JobControl {
  ParallelTask fn = nullptr;
  void* context = nullptr;
  int tasks = 0;
  std::atomic<int> next{0};
  std::atomic<int> done{0};
};

constexpr int kSpinRounds = 1 << 16;  // a few hundred microseconds of pause instructions

// The pool lives as long as the process and is never destroyed: a destructor of joinable
// std::threads at exit would call std::terminate (a replay or serve with kernel threads then
// ended in SIGABRT). The helpers end with the process, waiting on objects that outlive them.
std::mutex& poolMutex = *new std::mutex;  // held by the caller of a parallel step: one at a time
std::mutex& jobMutex = *new std::mutex;   // guards `current` and the sleep/wake handshake
std::condition_variable& wake = *new std::condition_variable;
std::vector<std::thread>& helpers = *new std::vector<std::thread>;
// Every control block ever made (a handful); one with no other reference may be reused.
std::vector<std::shared_ptr<JobControl>>& blocks = *new std::vector<std::shared_ptr<JobControl>>;
std::shared_ptr<JobControl>& current = *new std::shared_ptr<JobControl>;
std::atomic<uint64_t> generation{0};
std::atomic<int> sleepingHelpers{0};
std::atomic<bool> stopping{false};
int configuredThreads = 1;

void runTasks(JobControl& job, int worker) {
  for (int task = job.next.fetch_add(1, std::memory_order_relaxed); task < job.tasks; task = job.next.fetch_add(1, std::memory_order_relaxed)) {
    job.fn(job.context, task, worker);
    job.done.fetch_add(1, std::memory_order_release);
  }
}

void helperLoop(int worker, uint64_t seen) {
  for (;;) {
    int spins = 0;
    while (generation.load(std::memory_order_acquire) == seen && !stopping.load(std::memory_order_relaxed)) {
      if (++spins < kSpinRounds) {
        LOB_RTRL_PAUSE();
        continue;
      }
      std::unique_lock<std::mutex> lock(jobMutex);
      sleepingHelpers.fetch_add(1, std::memory_order_relaxed);
      wake.wait(lock, [&] { return generation.load(std::memory_order_acquire) != seen || stopping.load(std::memory_order_relaxed); });
      sleepingHelpers.fetch_sub(1, std::memory_order_relaxed);
      spins = 0;
    }
    if (stopping.load(std::memory_order_relaxed)) return;
    std::shared_ptr<JobControl> job;
    {
      std::lock_guard<std::mutex> lock(jobMutex);
      job = current;
      seen = generation.load(std::memory_order_acquire);
    }
    if (job) runTasks(*job, worker);
  }
}

void stopHelpers() {
  {
    std::lock_guard<std::mutex> lock(jobMutex);
    stopping.store(true);
  }
  wake.notify_all();
  for (std::thread& helper : helpers) helper.join();
  helpers.clear();
  stopping.store(false);
}

/** A control block no helper refers to any more (the pool's own reference is the only one). */
const std::shared_ptr<JobControl>& freeBlock() {
  for (const std::shared_ptr<JobControl>& block : blocks) {
    if (block.use_count() == 1) {
      // Pairs with the release in the helper's last reference drop: its reads of the block
      // happen before this thread rewrites it.
      std::atomic_thread_fence(std::memory_order_acquire);
      return block;
    }
  }
  blocks.push_back(std::make_shared<JobControl>());
  return blocks.back();
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
  JobControl* job = nullptr;
  {
    std::lock_guard<std::mutex> jobLock(jobMutex);
    current.reset();  // so the last job's block counts as free once no helper holds it
    const std::shared_ptr<JobControl>& block = freeBlock();
    block->fn = fn;
    block->context = context;
    block->tasks = tasks;
    block->next.store(0, std::memory_order_relaxed);
    block->done.store(0, std::memory_order_relaxed);
    current = block;
    job = block.get();
    generation.fetch_add(1, std::memory_order_acq_rel);
  }
  if (sleepingHelpers.load(std::memory_order_relaxed) > 0) wake.notify_all();
  runTasks(*job, 0);
  // A helper that wakes after this finds the exhausted job and takes nothing from it.
  while (job->done.load(std::memory_order_acquire) != tasks) LOB_RTRL_PAUSE();
}

}  // namespace lobrtrl
