// N-API entry of the native RTRL kernels. The instruction set is chosen once at load from
// what the CPU reports (AVX-512F, else AVX2 with FMA, else the portable baseline); `select`
// switches it for tests and the bench. Every call checks that each array is a Float64Array
// long enough for the shape it is given, so a wrong call throws instead of writing out of
// bounds; nothing is allocated per call.
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "kernel.h"
#include "tbptt.h"

namespace {

using lobrtrl::KernelTable;

std::vector<const KernelTable*> supportedTables() {
  std::vector<const KernelTable*> tables;
#if defined(LOB_RTRL_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) tables.push_back(&lobrtrl::avx512Table);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) tables.push_back(&lobrtrl::avx2Table);
#endif
  tables.push_back(&lobrtrl::baselineTable);
  return tables;
}

const std::vector<const KernelTable*> supported = supportedTables();
const KernelTable* active = supported.front();

// TBPTT has one wide copy (AVX2 without FMA: AVX-512 CPUs run it too), used unless the baseline is selected.
const lobrtrl::TbpttKernel* tbpttFor(const KernelTable* table) {
#if defined(LOB_RTRL_X86)
  if (table != &lobrtrl::baselineTable) return &lobrtrl::tbpttAvx2;
#endif
  (void)table;
  return &lobrtrl::tbpttBaseline;
}

// Scratch of the current call (lobrtrl::scratchLength); grows to the largest shape seen, never shrinks.
thread_local std::vector<double> scratch;

// Shapes stay far below 2^31 elements in S (N^2 P): N and d up to 4096, offsets up to 2^30.
constexpr int kMaxDimension = 4096;
constexpr int kMaxOffset = 1 << 30;

// The checks below ask N-API one question per argument (napi_get_value_double and
// napi_get_typedarray_info fail on a value of another type), not two: a step passes twenty.
bool readInt(const Napi::CallbackInfo& info, size_t index, const char* name, int min, int max, int* out) {
  double number = 0;
  if (napi_get_value_double(info.Env(), info[index], &number) != napi_ok) {
    Napi::TypeError::New(info.Env(), std::string(name) + ": expected a number").ThrowAsJavaScriptException();
    return false;
  }
  if (!(number >= min && number <= max) || number != static_cast<double>(static_cast<int>(number))) {
    Napi::RangeError::New(info.Env(), std::string(name) + ": expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]").ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<int>(number);
  return true;
}

bool readDouble(const Napi::CallbackInfo& info, size_t index, const char* name, double* out) {
  if (napi_get_value_double(info.Env(), info[index], out) == napi_ok) return true;
  Napi::TypeError::New(info.Env(), std::string(name) + ": expected a number").ThrowAsJavaScriptException();
  return false;
}

/** The data of argument `index` if it is a Float64Array of at least `length` elements from `offset`. */
double* float64At(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t offset, int64_t length) {
  napi_typedarray_type type;
  size_t elements = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(info.Env(), info[index], &type, &elements, &data, nullptr, nullptr) != napi_ok || type != napi_float64_array) {
    Napi::TypeError::New(info.Env(), std::string(name) + ": expected a Float64Array").ThrowAsJavaScriptException();
    return nullptr;
  }
  if (offset < 0 || static_cast<int64_t>(elements) < offset + length) {
    Napi::RangeError::New(info.Env(), std::string(name) + ": needs " + std::to_string(offset + length) + " elements, has " +
                                          std::to_string(elements)).ThrowAsJavaScriptException();
    return nullptr;
  }
  return static_cast<double*>(data) + offset;
}

double* scratchFor(int n, int classes) {
  const size_t length = static_cast<size_t>(lobrtrl::scratchLength(n, classes));
  if (scratch.size() < length) scratch.resize(length);
  return scratch.data();
}

// step(n, d, classes, vOffset, scale, params, hPrev, x, h, sPrev, s, probs, rows, rowsOffset,
//      logitOffsets | null, sumRows?, sumProbRows?, sumProbHidden?, sumHidden?, sumProbs?) -> finite
Napi::Value Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 15 && info.Length() != 20) {
    Napi::TypeError::New(env, "step: expected 15 arguments (FIFO) or 20 (batch sums)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  lobrtrl::StepArgs a{};
  int rowsOffset = 0;
  if (!readInt(info, 0, "n", 1, kMaxDimension, &a.n) || !readInt(info, 1, "d", 0, kMaxDimension, &a.d) || !readInt(info, 2, "classes", 1, kMaxDimension, &a.classes) ||
      !readInt(info, 3, "vOffset", 0, kMaxOffset, &a.vOffset) || !readInt(info, 13, "rowsOffset", 0, kMaxOffset, &rowsOffset)) return env.Undefined();
  if (!readDouble(info, 4, "scale", &a.scale)) return env.Undefined();
  const int64_t n = a.n, d = a.d, c = a.classes;
  const int64_t p = n * n + n * d + n;
  if (a.vOffset < p) {
    Napi::RangeError::New(env, "vOffset: must be at least P").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int64_t total = a.vOffset + c * n + c;
  if (!(a.params = float64At(info, 5, "params", 0, total))) return env.Undefined();
  if (!(a.hPrev = float64At(info, 6, "hPrev", 0, n))) return env.Undefined();
  if (!(a.x = float64At(info, 7, "x", 0, d))) return env.Undefined();
  if (!(a.h = float64At(info, 8, "h", 0, n))) return env.Undefined();
  if (!(a.sPrev = float64At(info, 9, "sPrev", 0, n * p))) return env.Undefined();
  if (!(a.s = float64At(info, 10, "s", 0, n * p))) return env.Undefined();
  if (!(a.probs = float64At(info, 11, "probs", 0, c))) return env.Undefined();
  if (!(a.rows = float64At(info, 12, "rows", rowsOffset, c * p))) return env.Undefined();
  if (a.h == a.hPrev || a.s == a.sPrev) {
    Napi::RangeError::New(env, "step: outputs must not alias the previous state").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!info[14].IsNull() && !(a.logitOffsets = float64At(info, 14, "logitOffsets", 0, c))) return env.Undefined();
  if (info.Length() == 20) {
    if (!(a.sumRows = float64At(info, 15, "sumRows", 0, c * p))) return env.Undefined();
    if (!(a.sumProbRows = float64At(info, 16, "sumProbRows", 0, p))) return env.Undefined();
    if (!(a.sumProbHidden = float64At(info, 17, "sumProbHidden", 0, c * n))) return env.Undefined();
    if (!(a.sumHidden = float64At(info, 18, "sumHidden", 0, n))) return env.Undefined();
    if (!(a.sumProbs = float64At(info, 19, "sumProbs", 0, c))) return env.Undefined();
  }
  a.scratch = scratchFor(a.n, a.classes);
  return Napi::Boolean::New(env, active->step(a));
}

// setThreads(n): threads one large step may use, the caller included (1 = none extra).
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  int threads = 1;
  if (info.Length() != 1 || !readInt(info, 0, "threads", 1, 256, &threads)) return info.Env().Undefined();
  lobrtrl::setParallelThreads(threads);
  return Napi::Number::New(info.Env(), lobrtrl::parallelThreads());
}

// threads() -> the current setting
Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), lobrtrl::parallelThreads()); }

// sensitivity(n, d, params, hPrev, x, h, sPrev, sNext)
Napi::Value Sensitivity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 8) {
    Napi::TypeError::New(env, "sensitivity: expected 8 arguments").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int n = 0, d = 0;
  if (!readInt(info, 0, "n", 1, kMaxDimension, &n) || !readInt(info, 1, "d", 0, kMaxDimension, &d)) return env.Undefined();
  const int64_t p = static_cast<int64_t>(n) * n + static_cast<int64_t>(n) * d + n;
  const double* params = float64At(info, 2, "params", 0, p);
  if (!params) return env.Undefined();
  const double* hPrev = float64At(info, 3, "hPrev", 0, n);
  if (!hPrev) return env.Undefined();
  const double* x = float64At(info, 4, "x", 0, d);
  if (!x) return env.Undefined();
  const double* h = float64At(info, 5, "h", 0, n);
  if (!h) return env.Undefined();
  const double* sPrev = float64At(info, 6, "sPrev", 0, n * p);
  if (!sPrev) return env.Undefined();
  double* sNext = float64At(info, 7, "sNext", 0, n * p);
  if (!sNext) return env.Undefined();
  if (sNext == sPrev) {
    Napi::RangeError::New(env, "sensitivity: sNext must not alias sPrev").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  active->sensitivity(n, d, params, hPrev, x, h, sPrev, sNext, scratchFor(n, 0));
  return env.Undefined();
}

// fmaLoop(iterations) -> [flops, checksum]
Napi::Value FmaLoop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int iterations = 0;
  if (info.Length() != 1 || !readInt(info, 0, "iterations", 1, kMaxOffset, &iterations)) {
    if (!env.IsExceptionPending()) Napi::TypeError::New(env, "fmaLoop: expected (iterations)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  double flops = 0;
  const double checksum = active->fmaLoop(iterations, &flops);
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, Napi::Number::New(env, flops));
  result.Set(1u, Napi::Number::New(env, checksum));
  return result;
}

// Reads adam's and exactAdam's arguments into `a`; false (with a JS exception pending) when one is wrong.
bool readAdamArgs(const Napi::CallbackInfo& info, const char* name, lobrtrl::AdamArgs& a) {
  Napi::Env env = info.Env();
  if (info.Length() != 13) {
    Napi::TypeError::New(env, std::string(name) + ": expected 13 arguments").ThrowAsJavaScriptException();
    return false;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_float64_array) {
    Napi::TypeError::New(env, "params: expected a Float64Array").ThrowAsJavaScriptException();
    return false;
  }
  a.length = static_cast<int64_t>(length);
  a.params = static_cast<double*>(data);
  if (!(a.grad = float64At(info, 1, "grad", 0, a.length)) || !(a.m = float64At(info, 2, "m", 0, a.length)) ||
      !(a.v = float64At(info, 3, "v", 0, a.length))) return false;
  size_t maskLength = 0;
  void* mask = nullptr;
  if (napi_get_typedarray_info(env, info[4], &type, &maskLength, &mask, nullptr, nullptr) != napi_ok || type != napi_uint8_array ||
      maskLength < length) {
    Napi::TypeError::New(env, "decayMask: expected a Uint8Array as long as params").ThrowAsJavaScriptException();
    return false;
  }
  a.decayMask = static_cast<const uint8_t*>(mask);
  double* scalars[] = {&a.l2, &a.clipNorm, &a.rate, &a.beta1, &a.beta2, &a.epsilon, &a.correction1, &a.correction2};
  for (size_t i = 0; i < 8; ++i) {
    if (napi_get_value_double(env, info[5 + i], scalars[i]) != napi_ok) {
      Napi::TypeError::New(env, std::string(name) + ": argument " + std::to_string(5 + i) + " must be a number").ThrowAsJavaScriptException();
      return false;
    }
  }
  return true;
}

// adam(params, grad, m, v, decayMask, l2, clipNorm, rate, beta1, beta2, epsilon, correction1,
//      correction2) -> 0 applied | 1 clipped | 2 skipped (non-finite gradient)
Napi::Value Adam(const Napi::CallbackInfo& info) {
  lobrtrl::AdamArgs a{};
  if (!readAdamArgs(info, "adam", a)) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), active->adam(a));
}

// exactAdam(same arguments as adam): the TypeScript Adam bit for bit (TBPTT's optimiser).
Napi::Value ExactAdam(const Napi::CallbackInfo& info) {
  lobrtrl::AdamArgs a{};
  if (!readAdamArgs(info, "exactAdam", a)) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), tbpttFor(active)->exactAdam(a));
}

// projectedGradient(classes, p, rows, rowsOffset, probs, probsOffset, label, grad):
// grad[j] = -rows[label, j] + sum_c probs[c] rows[c, j] for j < P, the recurrent part of one
// FIFO tick's cross-entropy gradient, summed in rtrl.ts's order (this file is compiled
// without FMA, so the result is the TypeScript one bit for bit).
Napi::Value ProjectedGradient(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 8) {
    Napi::TypeError::New(env, "projectedGradient: expected 8 arguments").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int classes = 0, p = 0, rowsOffset = 0, probsOffset = 0, label = 0;
  if (!readInt(info, 0, "classes", 1, kMaxDimension, &classes) || !readInt(info, 1, "p", 1, kMaxOffset, &p) ||
      !readInt(info, 3, "rowsOffset", 0, kMaxOffset, &rowsOffset) || !readInt(info, 5, "probsOffset", 0, kMaxOffset, &probsOffset) ||
      !readInt(info, 6, "label", 0, classes - 1, &label)) return env.Undefined();
  const double* rows = float64At(info, 2, "rows", rowsOffset, static_cast<int64_t>(classes) * p);
  if (!rows) return env.Undefined();
  const double* probs = float64At(info, 4, "probs", probsOffset, classes);
  if (!probs) return env.Undefined();
  double* grad = float64At(info, 7, "grad", 0, p);
  if (!grad) return env.Undefined();
  const double* labelRow = rows + static_cast<int64_t>(label) * p;
  for (int j = 0; j < p; ++j) grad[j] = -labelRow[j];
  for (int c = 0; c < classes; ++c) {
    const double pc = probs[c];
    const double* row = rows + static_cast<int64_t>(c) * p;
    for (int j = 0; j < p; ++j) grad[j] += pc * row[j];
  }
  return env.Undefined();
}

// tbpttGradient(n, d, classes, truncation, label, scale, params, historySize, historyInputs,
//               historyHidden, pendingSlots, head, count, pendingTicks, pendingProbs,
//               pendingOutputWeights, grad): adds the truncated gradient of the `count` oldest
// pending ticks to grad (tbptt.ts accumulateOldest, bit for bit); the caller pops them.
Napi::Value TbpttGradient(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 18) {
    Napi::TypeError::New(env, "tbpttGradient: expected 18 arguments").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  lobrtrl::TbpttArgs a{};
  if (!readInt(info, 0, "n", 1, kMaxDimension, &a.n) || !readInt(info, 1, "d", 0, kMaxDimension, &a.d) ||
      !readInt(info, 2, "classes", 1, kMaxDimension, &a.classes) || !readInt(info, 3, "skipInputs", 0, kMaxDimension, &a.skipInputs) || !readInt(info, 4, "truncation", 1, kMaxOffset, &a.truncation) ||
      !readInt(info, 5, "label", 0, a.classes - 1, &a.label) || !readInt(info, 8, "historySize", 1, kMaxOffset, &a.historySize) ||
      !readInt(info, 11, "pendingSlots", 1, kMaxOffset, &a.pendingSlots) || !readInt(info, 12, "head", 0, a.pendingSlots - 1, &a.head) ||
      !readInt(info, 13, "count", 0, a.pendingSlots, &a.count)) return env.Undefined();
  if (!readDouble(info, 6, "scale", &a.scale)) return env.Undefined();
  const int64_t n = a.n, d = a.d, c = a.classes;
  if (a.skipInputs > a.d) {
    Napi::RangeError::New(env, "skipInputs: at most d").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int64_t total = n * n + n * d + n + c * n + c + c * a.skipInputs;
  const int64_t slots = a.pendingSlots, size = a.historySize;
  if (!(a.params = float64At(info, 7, "params", 0, total)) || !(a.historyInputs = float64At(info, 9, "historyInputs", 0, size * d)) ||
      !(a.historyHidden = float64At(info, 10, "historyHidden", 0, size * n)) || !(a.pendingTicks = float64At(info, 14, "pendingTicks", 0, slots)) ||
      !(a.pendingProbs = float64At(info, 15, "pendingProbs", 0, slots * c)) ||
      !(a.pendingOutputWeights = float64At(info, 16, "pendingOutputWeights", 0, slots * c * n)) || !(a.grad = float64At(info, 17, "grad", 0, total))) {
    return env.Undefined();
  }
  // A tick indexes the history ring modulo its size, so only a negative or fractional one could reach outside it.
  for (int q = 0; q < a.count; ++q) {
    const double tick = a.pendingTicks[(a.head + q) % a.pendingSlots];
    if (!(tick >= 0 && tick <= 9007199254740991.0) || tick != static_cast<double>(static_cast<int64_t>(tick))) {
      Napi::RangeError::New(env, "pendingTicks: expected non-negative integers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  const size_t length = static_cast<size_t>(lobrtrl::tbpttScratchLength(a.n));
  if (scratch.size() < length) scratch.resize(length);
  a.scratch = scratch.data();
  tbpttFor(active)->accumulate(a);
  return env.Undefined();
}

Napi::Value Isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), active->name); }

Napi::Value Select(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "select: expected an instruction set name").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string wanted = info[0].As<Napi::String>().Utf8Value();
  for (const KernelTable* table : supported) {
    if (wanted == table->name) {
      active = table;
      return Napi::String::New(env, active->name);
    }
  }
  Napi::RangeError::New(env, "select: this CPU does not run \"" + wanted + "\"").ThrowAsJavaScriptException();
  return env.Undefined();
}

// glibc keeps what the process frees (the typed arrays of a hibernated symbol among it) in its
// arenas for reuse, so RSS never falls after symbols go to sleep. malloc_trim hands the free
// pages of every arena (the worker threads' too) back to the kernel. It walks the heaps under
// their locks, a few milliseconds for hundreds of megabytes, so it runs on the libuv pool and
// the promise settles on the loop: true when it ran (glibc), false where there is no such call.
class TrimWorker : public Napi::AsyncWorker {
 public:
  explicit TrimWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
#if defined(__GLIBC__)
    malloc_trim(0);
    ran_ = true;
#endif
  }
  void OnOK() override { deferred_.Resolve(Napi::Boolean::New(Env(), ran_)); }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  bool ran_ = false;
};

Napi::Value ReleaseFreeMemory(const Napi::CallbackInfo& info) {
  auto* worker = new TrimWorker(info.Env());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// Blocks of `bytes` or more get mappings of their own, returned to the kernel the moment they are
// freed, instead of a place in an arena. A symbol's large arrays (S is 186 KB at the default
// models) then leave no holes behind when it sleeps: measured with two workers, the threads'
// arenas kept 26 MB of 300 hibernated symbols after malloc_trim, 1 to 3 MB with this at 64 KB.
// It also fixes the threshold, which glibc otherwise raises to the largest block freed so far.
Napi::Value MapLargeBlocks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "mapLargeBlocks: expected a size in bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
#if defined(__GLIBC__)
  const double bytes = info[0].As<Napi::Number>().DoubleValue();
  if (!(bytes >= 4096 && bytes <= 32 * 1024 * 1024)) {
    Napi::RangeError::New(env, "mapLargeBlocks: expected 4 KB to 32 MB").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes)) == 1);
#else
  return Napi::Boolean::New(env, false);
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Array names = Napi::Array::New(env, supported.size());
  for (size_t i = 0; i < supported.size(); ++i) names.Set(static_cast<uint32_t>(i), Napi::String::New(env, supported[i]->name));
  exports.Set("supportedIsas", names);
  exports.Set("isa", Napi::Function::New(env, Isa, "isa"));
  exports.Set("select", Napi::Function::New(env, Select, "select"));
  exports.Set("step", Napi::Function::New(env, Step, "step"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("threads", Napi::Function::New(env, Threads, "threads"));
  exports.Set("sensitivity", Napi::Function::New(env, Sensitivity, "sensitivity"));
  exports.Set("fmaLoop", Napi::Function::New(env, FmaLoop, "fmaLoop"));
  exports.Set("adam", Napi::Function::New(env, Adam, "adam"));
  exports.Set("exactAdam", Napi::Function::New(env, ExactAdam, "exactAdam"));
  exports.Set("projectedGradient", Napi::Function::New(env, ProjectedGradient, "projectedGradient"));
  exports.Set("tbpttGradient", Napi::Function::New(env, TbpttGradient, "tbpttGradient"));
  exports.Set("releaseFreeMemory", Napi::Function::New(env, ReleaseFreeMemory, "releaseFreeMemory"));
  exports.Set("mapLargeBlocks", Napi::Function::New(env, MapLargeBlocks, "mapLargeBlocks"));
  return exports;
}

}  // namespace

NODE_API_MODULE(lob_rtrl_native, Init)
