"""Pick the compute device once, the same way everywhere: CUDA, then Apple's MPS, then the CPU."""
from __future__ import annotations

import platform

import torch


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device, or ``prefer`` ("cuda", "mps", "cpu") if it is available.

    Asking for a device that is not there is an error, not a silent fall-back.
    """
    if prefer is not None:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for, but torch.cuda.is_available() is False")
        if dev.type == "mps" and not _mps_available():
            raise RuntimeError("device 'mps' was asked for, but torch.backends.mps.is_available() is False")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device | str | None = None) -> str:
    """A human-readable name for provenance records, e.g. 'cuda: NVIDIA H100' or 'cpu: x86_64 (2 threads)'."""
    dev = torch.device(device) if device is not None else get_device()
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    if dev.type == "mps":
        return f"mps: {platform.machine()}"
    return f"cpu: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())
