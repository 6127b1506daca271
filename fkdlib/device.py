"""Pick the compute device once, the same way everywhere: CUDA, then Apple's MPS, then the CPU."""
from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

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
    """A human-readable name for provenance records, e.g. 'cuda: NVIDIA H100' or
    'cpu: AMD EPYC (x86_64, AVX512, 2 threads)'. A CPU is named by its model, its architecture, the instruction set
    torch's kernels use on it and the thread count: each changes a CPU's sums, so two runs retrace each other to the
    last digit only where all four agree (records made before the model and instruction set were named say only
    'cpu: x86_64 (1 threads)')."""
    dev = torch.device(device) if device is not None else get_device()
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    if dev.type == "mps":
        return f"mps: {platform.machine()}"
    isa = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")()
    return f"cpu: {cpu_model()} ({platform.machine()}, {isa}, {torch.get_num_threads()} threads)"


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo; macOS: sysctl), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())
