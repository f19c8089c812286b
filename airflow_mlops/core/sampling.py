"""Bounded uniform samples of data that arrives in chunks (the drift reference stored with each model).

Each row gets a seeded uniform random key and the rows with the k smallest keys are kept: a reservoir
sample that is exact (every row equally likely), mergeable across chunks and needs O(k) memory.
"""

from __future__ import annotations


class ReservoirSampler:
    def __init__(self, size: int, seed: int = 0):
        import numpy as np

        if size < 1:
            raise ValueError("the reservoir size must be at least 1")
        self.size = size
        self._rng = np.random.default_rng(seed)
        self._kept = None
        self.seen = 0

    def add(self, chunk) -> None:
        import pandas as pd

        if len(chunk) == 0:
            return
        keyed = chunk.assign(__key=self._rng.random(len(chunk)))
        self.seen += len(chunk)
        merged = keyed if self._kept is None else pd.concat([self._kept, keyed], ignore_index=True)
        self._kept = merged.nsmallest(self.size, "__key") if len(merged) > self.size else merged

    def result(self):
        if self._kept is None:
            raise ValueError("the reservoir saw no rows")
        return self._kept.sort_values("__key").drop(columns="__key").reset_index(drop=True)


def reservoir_sample(frame, size: int, seed: int = 0):
    sampler = ReservoirSampler(size, seed)
    sampler.add(frame)
    return sampler.result()
