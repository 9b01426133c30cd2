#!/usr/bin/env python3
"""The lob-rtrl RTRL learner step written with numpy, timed like bench/learners.ts.

One step is what RtrlLearner does per tick with fifo pending capacity 1 (one update per
tick): the Elman state update h = tanh(W h_prev + U x + b), the exact sensitivity update
S_next = (1 - h^2)[:, None] * (W @ S + I) with the immediate Jacobian I added through strided
views (index arithmetic, no dense I), the softmax output, the sensitivity projected through
the output layer, the cross-entropy gradient, global-norm clipping and an Adam update.
The flat parameter layout [W | U | b | V | c] and the optimiser defaults match
src/model/kernels/elman.ts and src/model/optimiser.ts.

bench/run.ts runs this once per hidden size beside the JS learners, so the two are measured
under the same machine load. Prints one JSON object on stdout; if numpy cannot be imported it
prints {"error": ...} and exits 0 so the caller can skip the comparison.

Standalone:  python3 bench/rtrl_numpy.py --hidden 8,16,32,64
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

try:
    import numpy as np
except ImportError as error:  # the caller reports this and skips the comparison
    print(json.dumps({"error": f"numpy is not importable: {error}", "python": platform.python_version()}))
    sys.exit(0)


def sensitivity_kernel_flops(n: int, d: int) -> int:
    """2 N^2 P for W @ S, P adds for the immediate Jacobian, N P multiplies for the scaling."""
    p = n * n + n * d + n
    return 2 * n * n * p + p + n * p


class NumpyRtrl:
    """RTRL Elman learner over preallocated numpy buffers; every step works in place."""

    def __init__(self, n: int, d: int, classes: int, optimiser: dict, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.n, self.d, self.classes = n, d, classes
        p = n * n + n * d + n
        self.p = p
        total = p + classes * n + classes
        self.params = np.zeros(total)
        self.params[: n * n] = rng.normal(0.0, 1.0 / math.sqrt(n), n * n)
        self.params[n * n : n * n + n * d] = rng.normal(0.0, 1.0 / math.sqrt(d), n * d)
        self.params[p : p + classes * n] = rng.normal(0.0, 1.0 / math.sqrt(n), classes * n)
        # Views into the flat vector, so one Adam update over `params` moves them all.
        self.W = self.params[: n * n].reshape(n, n)
        self.U = self.params[n * n : n * n + n * d].reshape(n, d)
        self.b = self.params[n * n + n * d : p]
        self.V = self.params[p : p + classes * n].reshape(classes, n)
        self.c = self.params[p + classes * n :]
        self.scale = 1.0

        self.h = np.zeros(n)
        self.h_next = np.zeros(n)
        self.pre = np.zeros(n)
        self.pre_input = np.zeros(n)
        self.slope = np.zeros((n, 1))
        self.s = np.zeros((n, p))
        self.s_next = np.zeros((n, p))
        self.ws = np.zeros((n, p))
        # Row k of I is h_prev at columns [k N, k N + N), x at [N^2 + k d, N^2 + k d + d) and
        # 1 at N^2 + N d + k: three strided views of `ws` reach exactly those entries.
        item = self.ws.itemsize
        strided = np.lib.stride_tricks.as_strided
        self.ws_w_block = strided(self.ws, shape=(n, n), strides=((p + n) * item, item))
        self.ws_u_block = strided(self.ws[:, n * n :], shape=(n, d), strides=((p + d) * item, item))
        self.ws_b_diag = strided(self.ws[:, n * n + n * d :], shape=(n,), strides=((p + 1) * item,))

        self.logits = np.zeros(classes)
        self.probs = np.zeros(classes)
        self.error = np.zeros(classes)
        self.rows = np.zeros((classes, p))
        self.grad = np.zeros(total)
        self.grad_recurrent = self.grad[:p]
        self.grad_v = self.grad[p : p + classes * n].reshape(classes, n)
        self.grad_c = self.grad[p + classes * n :]

        self.lr = optimiser["learningRate"]
        self.beta1 = optimiser["adamBeta1"]
        self.beta2 = optimiser["adamBeta2"]
        self.eps = optimiser["adamEpsilon"]
        self.clip = optimiser["clipNorm"]
        self.m = np.zeros(total)
        self.v = np.zeros(total)
        self.scratch = np.zeros(total)
        self.denominator = np.zeros(total)
        self.updates = 0

    def sensitivity(self, h_prev: np.ndarray, x: np.ndarray, h: np.ndarray, s_prev: np.ndarray, s_next: np.ndarray) -> None:
        """S_next = diag(1 - h^2) (W S_prev + I), I added in place through the strided views."""
        np.matmul(self.W, s_prev, out=self.ws)
        self.ws_w_block += h_prev
        self.ws_u_block += x
        self.ws_b_diag += 1.0
        np.multiply(h, h, out=self.slope[:, 0])
        np.subtract(1.0, self.slope, out=self.slope)
        np.multiply(self.ws, self.slope, out=s_next)

    def step(self, x: np.ndarray, label: int) -> None:
        h_prev, h = self.h, self.h_next
        np.matmul(self.W, h_prev, out=self.pre)
        np.matmul(self.U, x, out=self.pre_input)
        self.pre += self.pre_input
        self.pre += self.b
        np.tanh(self.pre, out=h)
        self.sensitivity(h_prev, x, h, self.s, self.s_next)
        self.h, self.h_next = h, h_prev
        self.s, self.s_next = self.s_next, self.s

        np.matmul(self.V, h, out=self.logits)
        self.logits *= self.scale
        self.logits += self.c
        self.logits -= self.logits.max()
        np.exp(self.logits, out=self.probs)
        self.probs /= self.probs.sum()

        # Cross-entropy gradient: recurrent part sum_c p_c rows_c - rows_y with rows = s V S.
        np.matmul(self.V, self.s, out=self.rows)
        self.rows *= self.scale
        np.matmul(self.probs, self.rows, out=self.grad_recurrent)
        self.grad_recurrent -= self.rows[label]
        np.copyto(self.error, self.probs)
        self.error[label] -= 1.0
        np.multiply.outer(self.error * self.scale, h, out=self.grad_v)
        np.copyto(self.grad_c, self.error)
        self.adam()

    def adam(self) -> None:
        g = self.grad
        norm = math.sqrt(float(np.dot(g, g)))
        if not math.isfinite(norm):
            return
        if self.clip > 0 and norm > self.clip:
            g *= self.clip / norm
        self.updates += 1
        b1, b2 = self.beta1, self.beta2
        self.m *= b1
        np.multiply(g, 1.0 - b1, out=self.scratch)
        self.m += self.scratch
        self.v *= b2
        np.multiply(g, g, out=self.scratch)
        self.scratch *= 1.0 - b2
        self.v += self.scratch
        correction1 = 1.0 - b1**self.updates
        correction2 = 1.0 - b2**self.updates
        np.multiply(self.v, 1.0 / correction2, out=self.denominator)
        np.sqrt(self.denominator, out=self.denominator)
        self.denominator += self.eps
        np.divide(self.m, self.denominator, out=self.scratch)
        self.scratch *= self.lr / correction1
        self.params -= self.scratch


def measure_rate(run, repeats: int, min_repeat_seconds: float, warmup_seconds: float) -> float:
    """Median steps/s over `repeats` runs of at least `min_repeat_seconds`, after a warm-up
    that also sizes the runs (same procedure as measureRate in bench/learners.ts)."""
    steps, elapsed, warmed = 1, 0.0, 0.0
    while True:
        started = time.perf_counter()
        run(steps)
        elapsed = time.perf_counter() - started
        warmed += elapsed
        if elapsed >= 0.05 and warmed >= warmup_seconds:
            break
        if elapsed < 0.05:
            steps *= 2
    per_repeat = max(1, math.ceil(steps * min_repeat_seconds / elapsed))
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(per_repeat)
        rates.append(per_repeat / (time.perf_counter() - started))
    rates.sort()
    return rates[len(rates) // 2]


def bench_hidden(n: int, d: int, classes: int, optimiser: dict, timing: dict, seed: int) -> dict:
    pool = 1024
    rng = np.random.default_rng(seed + 1)
    inputs = rng.standard_normal((pool, d))
    labels = rng.integers(0, classes, pool).tolist()
    learner = NumpyRtrl(n, d, classes, optimiser, seed)
    cursor = [0]

    def run_steps(steps: int) -> None:
        t = cursor[0]
        for _ in range(steps):
            i = t & (pool - 1)
            learner.step(inputs[i], labels[i])
            t += 1
        cursor[0] = t

    step_rate = measure_rate(run_steps, **timing)
    finite = bool(np.isfinite(learner.params).all() and np.isfinite(learner.s).all())
    steps_run = cursor[0]

    # The kernel alone, over states the learner's own forward pass produced.
    kernel = NumpyRtrl(n, d, classes, optimiser, seed)
    h_prev_pool = np.zeros((pool, n))
    h_pool = np.zeros((pool, n))
    h = np.zeros(n)
    for i in range(pool):
        h_prev_pool[i] = h
        h = np.tanh(kernel.W @ h + kernel.U @ inputs[i] + kernel.b)
        h_pool[i] = h
    buffers = [np.zeros((n, kernel.p)), np.zeros((n, kernel.p))]
    kernel_cursor = [0]

    def run_kernel(steps: int) -> None:
        t = kernel_cursor[0]
        for _ in range(steps):
            i = t & (pool - 1)
            kernel.sensitivity(h_prev_pool[i], inputs[i], h_pool[i], buffers[t & 1], buffers[(t + 1) & 1])
            t += 1
        kernel_cursor[0] = t

    kernel_rate = measure_rate(run_kernel, **timing)
    flops = sensitivity_kernel_flops(n, d)
    return {
        "hidden": n,
        "inputs": d,
        "classes": classes,
        "recurrentParams": kernel.p,
        "stepsPerSecond": step_rate,
        "kernelStepsPerSecond": kernel_rate,
        "kernelFlopsPerStep": flops,
        "kernelGflops": kernel_rate * flops / 1e9,
        "stepsRun": steps_run,
        "updates": learner.updates,
        "finite": finite and bool(np.isfinite(buffers[0]).all()),
    }


def blas_info() -> dict:
    """numpy's build-time BLAS plus, where it can be asked, the runtime kernel and threads."""
    info: dict = {
        "env": {key: os.environ.get(key) for key in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "cpuCount": os.cpu_count(),
    }
    try:
        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        info["name"] = blas.get("name")
        info["version"] = blas.get("version")
        info["configuration"] = blas.get("openblas configuration")
    except Exception as error:  # older numpy: show_config has no dict mode
        info["configError"] = str(error)
    try:
        from threadpoolctl import threadpool_info

        pools = threadpool_info()
        info["threadpools"] = [{k: pool.get(k) for k in ("internal_api", "version", "num_threads", "architecture")} for pool in pools]
        blas_pools = [pool for pool in pools if pool.get("user_api") == "blas"]
        if blas_pools:
            info["threads"] = blas_pools[0].get("num_threads")
            info["coreType"] = blas_pools[0].get("architecture")
        return info
    except ImportError:
        info["threadpoolctl"] = "not installed"
    info.update(openblas_runtime())
    return info


def openblas_runtime() -> dict:
    """Asks the OpenBLAS that numpy loaded (found in /proc/self/maps) for its threads and the
    core kernel it picked; empty when that is not possible (not Linux, not OpenBLAS)."""
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return {}
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        found: dict = {"library": path}
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                threads = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                corename = getattr(library, f"{prefix}_get_corename{suffix}", None)
                if threads is None:
                    continue
                found["threads"] = int(threads())
                if corename is not None:
                    corename.restype = ctypes.c_char_p
                    found["coreType"] = corename().decode()
                return found
        return found
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="8,16,32,64", help="comma-separated hidden sizes")
    parser.add_argument("--inputs", type=int, default=44)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-repeat-seconds", type=float, default=0.4)
    parser.add_argument("--warmup-seconds", type=float, default=0.3)
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--adam-beta1", type=float, default=0.9)
    parser.add_argument("--adam-beta2", type=float, default=0.999)
    parser.add_argument("--adam-epsilon", type=float, default=1e-8)
    parser.add_argument("--clip-norm", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--info-only", action="store_true", help="print versions and BLAS, measure nothing")
    args = parser.parse_args()
    optimiser = {
        "learningRate": args.learning_rate,
        "adamBeta1": args.adam_beta1,
        "adamBeta2": args.adam_beta2,
        "adamEpsilon": args.adam_epsilon,
        "clipNorm": args.clip_norm,
    }
    timing = {"repeats": args.repeats, "min_repeat_seconds": args.min_repeat_seconds, "warmup_seconds": args.warmup_seconds}
    hidden_sizes = [] if args.info_only else [int(text) for text in args.hidden.split(",") if text.strip()]
    results = [bench_hidden(n, args.inputs, args.classes, optimiser, timing, args.seed) for n in hidden_sizes]
    print(json.dumps({
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "kernelFlopsCounted": "2*N*N*P (W @ S) + P (immediate Jacobian adds) + N*P (scaling by 1 - h^2)",
        "results": results,
    }))


if __name__ == "__main__":
    main()
