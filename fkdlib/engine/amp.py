"""The engine's arithmetic precision: which autocast dtype a device runs the networks in.

``precision="auto"`` (the engine's default) picks, per device:

- CUDA: bfloat16 where the GPU supports it (Ampere and later), else float16 with a gradient scaler
  (e.g. Colab's T4);
- CPU: bfloat16 where the CPU has native bf16 instructions (AVX512-BF16 or AMX, e.g. AMD Zen 4, Intel
  Sapphire Rapids) and a short measurement in this process finds bf16 convolutions at least 15% faster than
  float32 (``cpu_bf16_faster``; 1.4-1.6x on the CPUs we measured), else float32 (emulated bf16 is slower);
- MPS: float32.

Only the networks' forward passes run under autocast; the losses (kernels, CE, KL) are computed in
float32 from float32 copies of the features and logits, the weights and the optimiser stay float32.
``"fp32"`` turns all of it off; ``"bf16"``/``"fp16"`` force a dtype.
"""
from __future__ import annotations

import functools
import time
from contextlib import nullcontext

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16)."""
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is None:
        return False
    try:
        c = caps()
    except Exception:  # pragma: no cover - depends on the build
        return False
    return bool(c.get("avx512_bf16") or c.get("amx_bf16"))


@functools.lru_cache(maxsize=1)
def cpu_bf16_faster(margin: float = 0.85) -> bool:
    """Whether a training step of a small convolutional net runs in under ``margin`` of its float32 time under
    bf16 autocast on this CPU (measured once per process, about a second; the best of three tries each)."""
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
                              torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(32, 10)).to(memory_format=torch.channels_last)
    x = torch.randn(32, 16, 16, 16).to(memory_format=torch.channels_last)

    def step_time(precision: str) -> float:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            with autocast(torch.device("cpu"), precision):
                out = net(x)
            out.float().square().mean().backward()
            best = min(best, time.perf_counter() - t0)
        return best

    return step_time("bf16") < margin * step_time("fp32")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"``: what ``precision`` means on ``device`` (see the module doc)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        if precision != "fp32" and device.type not in ("cuda", "cpu"):
            raise ValueError(f"precision {precision!r} is supported on CUDA and CPU, not on {device.type}")
        return precision
    if device.type == "cuda":
        # native bf16 from Ampere (compute capability 8) on; older GPUs (T4: 7.5) would only emulate it
        return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() and cpu_bf16_faster() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context of a resolved ``precision`` on ``device`` (a no-op for ``"fp32"``)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for float16 (bfloat16 has float32's range and needs none)."""
    if not hasattr(torch.amp, "GradScaler"):  # torch < 2.3: only CUDA has one
        return torch.cuda.amp.GradScaler(enabled=precision == "fp16" and device.type == "cuda")
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
