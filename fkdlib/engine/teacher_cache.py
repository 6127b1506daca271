"""Frozen teachers' outputs shared by the students of one process that see the same batches."""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch


class TeacherCache:
    """Frozen teachers' outputs on batches already seen, shared by the students trained in one process.

    Students of one seed see the same batches (the same augmentations), so the students of a grid at
    E = 1, 2, 4, 8 teachers need each teacher's outputs only once per batch. Entries are keyed by the teacher,
    the features kept and a hash of the batch's bytes (one host copy per step: for CPU grids), so a cached output
    is used only for the very batch it was computed on; the least recently used go past ``max_bytes``.
    """

    def __init__(self, max_bytes: int = 2 * 1024 ** 3):
        self.entries, self.max_bytes, self.bytes, self.hits, self.misses = OrderedDict(), max_bytes, 0, 0, 0

    @staticmethod
    def fingerprint(x: torch.Tensor) -> bytes:
        return hashlib.blake2b(x.detach().cpu().numpy().tobytes(), digest_size=16).digest() + str(tuple(x.shape)).encode()

    def get(self, key):
        hit = self.entries.get(key)
        if hit is None:
            self.misses += 1
            return None
        self.hits += 1
        self.entries.move_to_end(key)
        return hit[0]

    def put(self, key, value):
        size = sum(t.numel() * t.element_size() for t in [*value[0], value[1]])
        self.entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self.entries) > 1:
            _, (_, old) = self.entries.popitem(last=False)
            self.bytes -= old
        return value
