"""Benchmark of the gate statistics, as ratios against baselines measured in the same run.

* fast DeLong (Sun & Xu, mid-ranks, O(n log n)) vs the quadratic textbook form, on a holdout small enough
  for the quadratic form, then the fast form alone on 1M rows;
* the paired bootstrap (1000 resamples) of a mean metric on 1M rows vs a naive per-resample loop on 100k.
Run: make bench   (or .venv/bin/python bench/gate_stats.py)
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from airflow_mlops.core.stats import delong_test, paired_bootstrap


def timed(function, *args, **kwargs):
    tracemalloc.start()
    started = time.perf_counter()
    result = function(*args, **kwargs)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, elapsed, peak / 2**20


def delong_quadratic(y, a, b):
    out = []
    for s in (a, b):
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        out.append((psi.mean(axis=1), psi.mean(axis=0)))
    m, n = (y == 1).sum(), (y == 0).sum()
    return np.cov(np.vstack([o[0] for o in out])) / m + np.cov(np.vstack([o[1] for o in out])) / n


def naive_bootstrap(y, a, b, samples, seed=0):
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(samples):
        index = rng.integers(0, len(y), len(y))
        gains.append(((a[index] - y[index]) ** 2).mean() - ((b[index] - y[index]) ** 2).mean())
    return np.quantile(gains, [0.025, 0.975])


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = 1 / (1 + np.exp(-(y + rng.normal(0, 1.2, n))))
    b = 1 / (1 + np.exp(-(1.1 * y + rng.normal(0, 1.2, n))))
    return y, a, b


def main() -> None:
    y, a, b = data(8_000)
    delong_test(y[:100], a[:100], b[:100])  # warm-up: scipy's import is not the statistic's cost
    _, quadratic_s, quadratic_mb = timed(delong_quadratic, y, a, b)
    _, fast_s, fast_mb = timed(delong_test, y, a, b)
    print(f"DeLong n=8k     quadratic {quadratic_s:7.3f} s {quadratic_mb:8.1f} MB | fast {fast_s:7.3f} s "
          f"{fast_mb:6.1f} MB | speed-up x{quadratic_s / fast_s:.0f}")
    y, a, b = data(1_000_000)
    _, big_s, big_mb = timed(delong_test, y, a, b)
    print(f"DeLong n=1M     fast {big_s:.3f} s, peak {big_mb:.0f} MB")
    small = data(100_000)
    _, naive_s, _ = timed(naive_bootstrap, *small, 1000)
    _, vector_s, vector_mb = timed(paired_bootstrap, "brier", small[0], small[1], small[2], samples=1000)
    print(f"bootstrap n=100k x1000  naive loop {naive_s:.2f} s | vectorised {vector_s:.2f} s "
          f"({vector_mb:.0f} MB) | ratio x{naive_s / vector_s:.1f}")
    _, boot_s, boot_mb = timed(paired_bootstrap, "brier", y, a, b, samples=1000)
    print(f"bootstrap n=1M x1000    vectorised {boot_s:.2f} s, peak {boot_mb:.0f} MB")


if __name__ == "__main__":
    main()
