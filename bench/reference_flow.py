#!/usr/bin/env python3
"""An independent reference for issue 11: how far order flow takes a simple online learner.

Reads a LOBSTER sample (zip or the message/orderbook CSV pair) with its own parser, shares
no code with lob-rtrl, and scores two online learners prequentially on `next-move` (the
direction of the next mid change; every tick predicts, and all ticks since the last change
resolve together when the mid moves):

- logistic regression, plain SGD on the cross-entropy;
- an Elman network (N hidden, tanh) trained by exact RTRL with plain SGD, the sensitivity
  S = dh/d(W, U, b) carried forward every tick.

Inputs (standardised online by an exponentially weighted mean and variance, half-life
1000 ticks, clipped to +-5): spread, level-1 and depth imbalance, order-flow imbalance at
every level (Xu, Yang, Kong & Wang 2019), the last mid return, aggressor-signed executed
volume decayed over 10 and 100 events, and the last event's type (submit / cancel or delete
/ execute) and side as a one-hot of six. Only data up to and including the tick is used.

    python3 bench/reference_flow.py ../shared/data/lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip

Prints one JSON object: per learner accuracy, log-loss and the number of scored ticks.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import zipfile

import numpy as np


def read_pair(path: str) -> tuple[np.ndarray, np.ndarray]:
    def load(text: str) -> np.ndarray:
        return np.loadtxt(io.StringIO(text), delimiter=",")

    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            message = next(n for n in names if "_message_" in n)
            book = next(n for n in names if "_orderbook_" in n)
            return load(archive.read(message).decode()), load(archive.read(book).decode())
    book_path = path.replace("_message_", "_orderbook_")
    with open(path) as m, open(book_path) as b:
        return load(m.read()), load(b.read())


def build_features(messages: np.ndarray, books: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw (unstandardised) inputs per row and the mid after each row, computed causally."""
    rows = len(messages)
    ask_p = books[:, 0::4][:, :levels]
    ask_q = books[:, 1::4][:, :levels]
    bid_p = books[:, 2::4][:, :levels]
    bid_q = books[:, 3::4][:, :levels]
    mid = (ask_p[:, 0] + bid_p[:, 0]) / 2
    features = []
    spread = (ask_p[:, 0] - bid_p[:, 0]) / mid * 1e4
    imbalance = (bid_q[:, 0] - ask_q[:, 0]) / (bid_q[:, 0] + ask_q[:, 0])
    depth = (bid_q.sum(1) - ask_q.sum(1)) / (bid_q.sum(1) + ask_q.sum(1))
    features += [spread, imbalance, depth]
    # Multi-level OFI: level m's contribution between consecutive rows, per level, unit-free.
    for m in range(levels):
        e = np.zeros(rows)
        pb, qb, pa, qa = bid_p[:, m], bid_q[:, m], ask_p[:, m], ask_q[:, m]
        e[1:] = (
            (pb[1:] >= pb[:-1]) * qb[1:] - (pb[1:] <= pb[:-1]) * qb[:-1]
            - (pa[1:] <= pa[:-1]) * qa[1:] + (pa[1:] >= pa[:-1]) * qa[:-1]
        )
        scale = np.ones(rows)
        scale[1:] = qb[1:] + qb[:-1] + qa[1:] + qa[:-1]
        features.append(e / scale)
    ret = np.zeros(rows)
    ret[1:] = np.log(mid[1:] / mid[:-1]) * 1e4
    features.append(ret)
    kind = messages[:, 1].astype(int)
    direction = messages[:, 5]
    size = messages[:, 3]
    executed = (kind == 4) | (kind == 5)
    # LOBSTER's direction is the resting order's side; the aggressor is the other one.
    signed = np.where(executed, -direction * size, 0.0)
    for half_life in (10, 100):
        decay = 2 ** (-1 / half_life)
        flow = np.zeros(rows)
        acc = 0.0
        for t in range(rows):
            acc = acc * decay + signed[t]
            flow[t] = acc
        features.append(np.sign(flow) * np.log1p(np.abs(flow)))
    groups = [kind == 1, (kind == 2) | (kind == 3), executed]
    for group in groups:
        for side in (1, -1):
            features.append((group & (direction == side)).astype(float))
    return np.stack(features, axis=1), mid


def standardise(raw: np.ndarray, half_life: float = 1000, clip: float = 5) -> np.ndarray:
    alpha = 1 - 2 ** (-1 / half_life)
    mean = np.zeros(raw.shape[1])
    var = np.zeros(raw.shape[1])
    out = np.empty_like(raw)
    for t in range(len(raw)):
        w = max(1 / (t + 1), alpha)
        d = raw[t] - mean
        mean += w * d
        var = (1 - w) * (var + w * d * d)
        out[t] = np.clip((raw[t] - mean) / np.sqrt(var + 1e-8), -clip, clip)
    return out


class Score:
    def __init__(self) -> None:
        self.n = 0
        self.correct = 0
        self.loss = 0.0

    def add(self, p_up: float, label: int) -> None:
        self.n += 1
        self.correct += int((p_up >= 0.5) == (label == 1))
        p = min(max(p_up if label == 1 else 1 - p_up, 1e-12), 1.0)
        self.loss -= math.log(p)

    def summary(self) -> dict:
        return {"accuracy": self.correct / self.n, "log_loss": self.loss / self.n, "scored": self.n}


def run_logistic(x: np.ndarray, mid: np.ndarray, lr: float) -> dict:
    d = x.shape[1]
    w = np.zeros(d)
    b = 0.0
    score = Score()
    pending_x: list[np.ndarray] = []
    pending_p: list[float] = []
    last_mid = math.nan
    for t in range(len(x)):
        if pending_x and mid[t] != last_mid:
            label = 1 if mid[t] > last_mid else 0
            gw = np.zeros(d)
            gb = 0.0
            for xi, pi in zip(pending_x, pending_p):
                score.add(pi, label)
                gw += (pi - label) * xi
                gb += pi - label
            w -= lr * gw / len(pending_x)
            b -= lr * gb / len(pending_x)
            pending_x, pending_p = [], []
        p = 1 / (1 + math.exp(-(x[t] @ w + b)))
        pending_x.append(x[t])
        pending_p.append(p)
        last_mid = mid[t]
    return score.summary()


def run_rtrl(x: np.ndarray, mid: np.ndarray, hidden: int, lr: float, clip: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n, d = hidden, x.shape[1]
    W = rng.normal(0, 1 / math.sqrt(n), (n, n))
    U = rng.normal(0, 1 / math.sqrt(d), (n, d))
    b = np.zeros(n)
    V = rng.normal(0, 1 / math.sqrt(n), (2, n))
    c = np.zeros(2)
    p_count = n * n + n * d + n
    S = np.zeros((n, p_count))
    h = np.zeros(n)
    score = Score()
    # Running sums over the pending ticks: the gradient is linear in the one-hot label.
    sum_ph = np.zeros((2, n))
    sum_h = np.zeros(n)
    sum_p = np.zeros(2)
    sum_vs = np.zeros((2, p_count))
    sum_pvs = np.zeros(p_count)
    pending: list[float] = []
    last_mid = math.nan
    for t in range(len(x)):
        if pending and mid[t] != last_mid:
            label = 1 if mid[t] > last_mid else 0
            for p_up in pending:
                score.add(p_up, label)
            k = len(pending)
            g_v = sum_ph.copy()
            g_v[label] -= sum_h
            g_c = sum_p.copy()
            g_c[label] -= k
            g_rec = sum_pvs - sum_vs[label]
            norm = math.sqrt((g_v ** 2).sum() + (g_c ** 2).sum() + (g_rec ** 2).sum()) / k
            scale = lr / k * (min(1.0, clip / norm) if norm > 0 else 1.0)
            V -= scale * g_v
            c -= scale * g_c
            W -= scale * g_rec[: n * n].reshape(n, n)
            U -= scale * g_rec[n * n: n * n + n * d].reshape(n, d)
            b -= scale * g_rec[n * n + n * d:]
            sum_ph[:] = 0
            sum_h[:] = 0
            sum_p[:] = 0
            sum_vs[:] = 0
            sum_pvs[:] = 0
            pending = []
        h_prev = h
        h = np.tanh(W @ h_prev + U @ x[t] + b)
        # Immediate Jacobian of the pre-activation: unit i depends on W[i,:], U[i,:], b[i].
        S = W @ S
        for i in range(n):
            S[i, i * n:(i + 1) * n] += h_prev
            S[i, n * n + i * d: n * n + (i + 1) * d] += x[t]
            S[i, n * n + n * d + i] += 1
        S *= (1 - h * h)[:, None]
        logits = V @ h + c
        logits -= logits.max()
        e = np.exp(logits)
        p = e / e.sum()
        vs = V @ S
        sum_ph += np.outer(p, h)
        sum_h += h
        sum_p += p
        sum_vs += vs
        sum_pvs += p @ vs
        pending.append(float(p[1]))
        last_mid = mid[t]
    return score.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="LOBSTER sample zip, or the message CSV of a pair")
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--rows", type=int, default=0, help="only the first ROWS rows (0: all)")
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--logistic-lr", type=float, default=0.01)
    parser.add_argument("--rtrl-lr", type=float, default=0.01)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-rtrl", action="store_true")
    args = parser.parse_args()
    messages, books = read_pair(args.path)
    if args.rows:
        messages, books = messages[: args.rows], books[: args.rows]
    raw, mid = build_features(messages, books, args.levels)
    x = standardise(raw)
    result = {"file": args.path, "rows": len(x), "inputs": x.shape[1], "logistic": run_logistic(x, mid, args.logistic_lr)}
    if not args.skip_rtrl:
        result["rtrl"] = run_rtrl(x, mid, args.hidden, args.rtrl_lr, args.clip, args.seed)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
