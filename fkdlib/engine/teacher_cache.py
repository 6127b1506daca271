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
    is used only for the very batch it was computed on; the least recently used go past ``max_bytes``. An entry
    over ``max_entry_bytes`` is handed back but not kept: the cache is for outputs small enough that a whole run's
    fit (a penultimate feature and the logits), not for a method that reads the teachers' feature maps (SP).
    """

    def __init__(self, max_bytes: int = 2 * 1024 ** 3, max_entry_bytes: int | None = None):
        self.entries, self.max_bytes, self.bytes, self.hits, self.misses = OrderedDict(), max_bytes, 0, 0, 0
        self.max_entry_bytes = max_entry_bytes

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
        if self.max_entry_bytes is not None and size > self.max_entry_bytes:
            return value
        self.entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self.entries) > 1:
            _, (_, old) = self.entries.popitem(last=False)
            self.bytes -= old
        return value


def grid_cache(device, max_bytes: int, max_entry_bytes: int = 256 * 1024) -> TeacherCache | None:
    """A grid worker's cache for the students it trains one after another, or None off the CPU (its key copies
    every batch to the host, a sync a GPU step should not make). ``max_bytes`` must hold the teachers' outputs
    over a whole run (epochs x batches x (feature + logits) x 4 bytes per teacher), or least-recently-used eviction
    in the run's own order throws out each entry just before it is needed and nothing is ever hit."""
    from ..device import get_device

    device = device if isinstance(device, torch.device) else get_device(device)
    return TeacherCache(max_bytes, max_entry_bytes) if device.type == "cpu" else None
