"""Scales and sizes: the one place sizes live.

Every notebook and experiment runs at one of three scales, chosen by one setting (the notebook's
``SCALE`` parameter, which defaults to the ``FKD_SCALE`` environment variable):

- ``smoke``: seconds on a CPU; what nbval and CI run. Proves the code path, claims nothing.
- ``lite``: a real but reduced run that a 2-core CPU finishes in minutes.
- ``full``: the paper's recipe, for a GPU.
"""
from __future__ import annotations

import os

SCALES = ("smoke", "lite", "full")

# notebook 00: a teacher trained briefly on synthetic images, then a plain and an FKD student
_SIZES = {
    "quickstart": {
        "smoke": dict(n_per_class=8, num_classes=4, image_size=32, batch_size=16,
                      teacher_steps=6, student_steps=6, probe_size=16),
        "lite": dict(n_per_class=100, num_classes=8, image_size=32, batch_size=64,
                     teacher_steps=150, student_steps=150, probe_size=64),
        "full": dict(n_per_class=500, num_classes=10, image_size=32, batch_size=128,
                     teacher_steps=600, student_steps=600, probe_size=128),
    },
}


def get_scale(scale: str | None = None) -> str:
    """Validate ``scale``; if None, read ``FKD_SCALE`` (default ``lite``)."""
    scale = scale if scale is not None else os.environ.get("FKD_SCALE", "lite")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)} (setting FKD_SCALE or SCALE)")
    return scale


def sizes(name: str, scale: str | None = None) -> dict:
    """The sizes of experiment or notebook ``name`` at ``scale`` (a fresh dict you may edit)."""
    if name not in _SIZES:
        raise ValueError(f"no sizes defined for {name!r}; known: {', '.join(sorted(_SIZES))}")
    return dict(_SIZES[name][get_scale(scale)])
