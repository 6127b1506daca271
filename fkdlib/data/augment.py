"""On-device augmentation and the epoch's random draws, for ``DeviceLoader`` (data/loader.py).

The augmentation has exactly torchvision's distribution: for every image independently, the crop
offsets ``(i, j)`` of ``RandomCrop(H, padding=pad)`` are each uniform on ``{0, ..., 2*pad}`` (in the
image zero-padded by ``pad`` pixels, in pixel space, i.e. before normalisation), and the image is
mirrored left-right with probability 1/2 (``RandomHorizontalFlip()``); then ``Normalize(mean, std)``
of the [0, 1] image. :func:`random_crop_flip` is that crop + flip given the draws (tested pixel for pixel
against ``torchvision.transforms.functional``), :func:`normalize` the normalisation.

Randomness and resume. All random draws of an epoch -- the permutation, the per-image offsets and flips
-- are made at once by a CPU ``torch.Generator`` seeded with ``seed * 1_000_003 + epoch`` (see
:func:`epoch_seed`) and moved to the device in one copy. So an epoch is a pure function of
``(seed, epoch)``: the same on CPU, CUDA and MPS, independent of the batch size, and a run resumed at
epoch ``e`` (``loader.set_epoch(e)`` or ``load_state_dict``) sees exactly the batches an uninterrupted
run would, without replaying epochs ``0..e-1``; :meth:`DeviceLoader.iter_epoch` can also start in the
middle of an epoch. The per-batch step only slices those draws and launches tensor ops: no ``.item()``,
no data-dependent shapes, no host syncs.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

_SEED_STRIDE = 1_000_003  # epoch seeds: seed * _SEED_STRIDE + epoch (+ a constant per stream)
_STREAM_SALT = 0x9E3779B97F4A7C15  # golden-ratio constant: separates the forever() stream(s) from the main one


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """The CPU generator seed of ``epoch``: ``seed * 1_000_003 + epoch`` for the main stream (``stream=0``).

    Other streams (``forever()`` uses 1) add ``stream * 0x9E3779B97F4A7C15``, all modulo 2**64.
    """
    return (seed * _SEED_STRIDE + epoch + stream * _STREAM_SALT) % 2**64


def draw_epoch(
    n: int, seed: int, epoch: int, *, pad: int = 4, flip: bool = True, stream: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All random draws of one training epoch, on the CPU: ``(perm, offsets, flips)``.

    ``perm`` (n,) int64 is the order of the examples; ``offsets`` (n, 2) int64 the crop offsets ``(i, j)``
    (top, left in the image zero-padded by ``pad``), each uniform on ``{0, ..., 2*pad}``; ``flips`` (n,)
    bool, each True with probability 1/2 (all False if ``flip`` is False). Row ``k`` of ``offsets`` and
    ``flips`` belongs to the ``k``-th example of the epoch, ``perm[k]``. Drawn in this order (perm,
    offsets, flips) from ``torch.Generator().manual_seed(epoch_seed(seed, epoch, stream))``.
    """
    g = torch.Generator().manual_seed(epoch_seed(seed, epoch, stream))
    perm = torch.randperm(n, generator=g)
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=g)
    flips = torch.randint(0, 2, (n,), generator=g).bool() if flip else torch.zeros(n, dtype=torch.bool)
    return perm, offsets, flips


def random_crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Per-image random crop of the zero-padded images, then per-image horizontal flip, given the draws.

    ``x`` (B, C, H, W), any dtype (uint8 here: the padding is 0 in pixel space, before normalisation);
    ``offsets`` (B, 2) integer ``(i, j)`` with ``0 <= i, j <= 2*pad``; ``flips`` (B,) bool or 0/1. Image
    ``b`` of the result equals torchvision's ``F.crop(F.pad(x[b], [pad] * 4, fill=0), i, j, H, W)``,
    followed by ``F.hflip`` when ``flips[b]`` -- exactly ``RandomCrop(H, padding=pad)`` +
    ``RandomHorizontalFlip()`` with those draws. Pure and batched: the batch is padded once and the
    output gathered with index arithmetic (a base grid plus each image's offset, the flip folded into
    the column index). Offsets are not range-checked (that would need a host sync).
    """
    if x.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
    B, C, H, W = x.shape
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    xp = F.pad(x, (pad, pad, pad, pad)) if pad > 0 else x
    Hp, Wp = H + 2 * pad, W + 2 * pad
    offsets = offsets.to(device=x.device, dtype=torch.long)
    flips = flips.to(device=x.device, dtype=torch.bool)
    ar_h = torch.arange(H, device=x.device)
    ar_w = torch.arange(W, device=x.device)
    rows = offsets[:, 0:1] + ar_h  # (B, H): padded row of every output row
    cols = offsets[:, 1:2] + torch.where(flips[:, None], (W - 1) - ar_w, ar_w)  # (B, W), mirrored if flipped
    lin = (rows[:, :, None] * Wp + cols[:, None, :]).reshape(B, 1, H * W).expand(B, C, H * W)
    return xp.reshape(B, C, Hp * Wp).gather(2, lin).view(B, C, H, W)


def normalize(
    x: torch.Tensor,
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
    *,
    channels_last: bool = False,
) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 ``(x / 255 - mean) / std`` per channel, on x's device.

    The same arithmetic as ``fkdlib.data.to_float`` (so the two agree bit for bit) and as
    torchvision's ``ToTensor()`` + ``Normalize(mean, std)``. ``mean``/``std``: C numbers, or tensors
    broadcastable to (1, C, 1, 1) (pass device tensors to avoid a host->device copy per call).
    With ``channels_last`` the result is in ``torch.channels_last`` memory format.
    """
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1)
    out = (x.float() / 255 - mean_t) / std_t
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out
