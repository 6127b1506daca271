"""The training engine's data loader: the whole data set as uint8 on the device, augmented there.

Why not ``torch.utils.data.DataLoader`` + torchvision transforms? The recipe we follow is RepDistiller's
CIFAR training transform (docs/paper.md §3.4)::

    transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                        transforms.ToTensor(), transforms.Normalize(mean, std)])

Run per image through PIL in worker processes, that costs Python work for every image of every epoch,
and on a small machine (or next to a fast GPU) the input pipeline, not the model, becomes the
bottleneck. CIFAR-10/100 (50,000 x 3 x 32 x 32 bytes = 150 MB) and STL-10 fit on any device as uint8,
so this loader moves ``X`` (and ``y``) to the device **once** and, per batch, does with a handful of
batched tensor ops exactly what the transform above does per image: no workers, no PIL, no per-image
Python, no host<->device traffic except one small copy of an epoch's random draws.

The augmentation and the epoch's random draws are in ``fkdlib.data.augment`` (torchvision's distribution,
exactly; each epoch a pure function of ``(seed, epoch)``, so a resumed run sees the batches an uninterrupted one
would).

A second stream for the distillation term (:meth:`DeviceLoader.forever`): when the kernel term uses other
data (STL-10: 512 unlabelled images beside 64 labelled ones for CE) or a larger batch, call
``forever()`` on that data's loader. It is an endless sequence of full batches cut from a continuous
stream of epochs drawn with their own seeds (stream 1, never equal to the main iteration's), so it
is independent of the main iterator even on the same loader. Batch ``t`` of the stream is a pure
function of ``(seed, t)``; resume it exactly with ``forever(start_step=t)``, where ``t`` is the number
of stream batches already used (one per optimisation step: ``epoch * len(main_loader) + batch``).

Works on CPU, CUDA and MPS: nothing here is CUDA-only.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from .augment import draw_epoch, normalize, random_crop_flip

__all__ = ["DeviceLoader"]

class DeviceLoader:
    """Batches of a uint8 image set kept on the device; train-mode augmentation done there, batched.

    ``X`` uint8 (N, C, H, W) (any H, W: 32, 64, 96 ...), ``y`` int64 (N,) or ``None`` for unlabelled data,
    in which case the batches are ``(x, None)``. Both are moved to ``device`` once (default: X's device).

    ``iter(loader)`` yields the ``(x, y)`` batches of one epoch: ``x`` float32 (B, C, H, W), normalised
    with ``mean``/``std`` (channels_last memory format if ``channels_last``), ``y`` int64 on the device.
    With ``return_index=True`` the batches are ``(x, y, idx)``: ``idx`` int64 (B,), the examples' indices into
    ``X`` (for a loss that keeps a slot per training example, such as CRD's memory).

    * ``train=True``: a fresh permutation every epoch; every image independently randomly cropped from
      its ``pad``-pixel zero-padded version and flipped left-right with probability 1/2 (if ``flip``):
      RepDistiller's ``RandomCrop(H, padding=pad)`` + ``RandomHorizontalFlip()``, then ``Normalize``.
    * ``train=False``: no augmentation, no shuffling: the examples in their order, ``normalize(X)``.

    Batches: ``len(loader)`` of them. The last, partial batch is yielded unless ``drop_last``; except that
    in train mode a last partial batch of exactly **one** example is dropped (pairwise distillation
    losses, batch norm, need B >= 2; that example just sits out this epoch, by the epoch's permutation).

    Epochs and resume. The loader counts epochs: each ``iter(loader)`` starts epoch ``loader.epoch`` and
    advances the counter by one. The epoch's draws depend only on ``(seed, epoch)`` (:func:`draw_epoch`),
    so ``set_epoch(e)`` -- or ``load_state_dict(state_dict())`` saved at an epoch boundary -- makes the next
    ``iter()`` produce exactly epoch ``e`` of an uninterrupted run; ``iter_epoch(e, start_batch=b)``
    produces epoch ``e`` from its batch ``b`` on, without touching the counter (mid-epoch resume).
    A trainer that calls ``set_epoch(e)`` at each epoch start is exact whatever happened before.

    The second stream, for the distillation term: :meth:`forever`.
    """

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor | None,
        batch_size: int,
        *,
        train: bool,
        mean: Sequence[float] | torch.Tensor,
        std: Sequence[float] | torch.Tensor,
        device: torch.device | str | None = None,
        pad: int = 4,
        flip: bool = True,
        seed: int = 0,
        channels_last: bool = True,
        drop_last: bool = False,
        return_index: bool = False,
    ) -> None:
        if X.dtype != torch.uint8 or X.dim() != 4:
            raise ValueError(f"X must be uint8 (N, C, H, W), got {X.dtype} of shape {tuple(X.shape)}")
        if len(X) < 1:
            raise ValueError("X is empty")
        if y is not None and (y.dim() != 1 or len(y) != len(X)):
            raise ValueError(f"y must be (N,) = ({len(X)},), got shape {tuple(y.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        C = X.shape[1]
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if len(mean_t) != C or len(std_t) != C:
            raise ValueError(f"mean and std need {C} values (one per channel), got {len(mean_t)} and {len(std_t)}")
        self.device = torch.device(device) if device is not None else X.device
        self.X = X.to(self.device)
        self.y = y.to(self.device, dtype=torch.long) if y is not None else None
        self.batch_size = int(batch_size)
        self.train = bool(train)
        self.pad, self.flip, self.seed = int(pad), bool(flip), int(seed)
        self.channels_last, self.drop_last = bool(channels_last), bool(drop_last)
        self.return_index = bool(return_index)
        self._mean = mean_t.reshape(1, C, 1, 1).to(self.device)
        self._std = std_t.reshape(1, C, 1, 1).to(self.device)
        self.epoch = 0  # the epoch the next iter() produces

    # ------------------------------------------------------------------ epochs
    def __len__(self) -> int:
        """Number of batches per epoch."""
        n, b = len(self.X), self.batch_size
        full, rem = divmod(n, b)
        if rem == 0 or self.drop_last or (self.train and rem == 1):
            return full
        return full + 1

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter(loader)`` produce epoch ``epoch`` (its draws depend on (seed, epoch) only)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        """``{"epoch": next epoch, "seed": seed}``: enough to resume exactly at an epoch boundary."""
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state.get("seed", self.seed))
        self.set_epoch(state["epoch"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        epoch = self.epoch
        self.epoch += 1
        return self.iter_epoch(epoch)

    def iter_epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """The batches of epoch ``epoch``, from batch ``start_batch`` on; the epoch counter is untouched."""
        n, b = len(self.X), self.batch_size
        nb = len(self)
        if self.train:
            draws = self._epoch_draws(epoch, stream=0)
        for k in range(start_batch, nb):
            s, e = k * b, min((k + 1) * b, n)
            if self.train:
                yield self._gather_batch(draws[:, s:e])
            else:
                yield self._eval_batch(s, e)

    # ------------------------------------------------------------------ the second stream
    def forever(
        self, start_step: int = 0, *, batch_size: int | None = None, seed: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """An endless generator of full batches, independent of the main iteration: for the kernel term.

        The stream is the concatenation of epochs 0, 1, 2, ... of this data, each with its own
        permutation and augmentation draws (``draw_epoch(..., stream=1)`` with ``seed`` (default: the
        loader's), so never the main iteration's draws), cut into consecutive batches of ``batch_size``
        (default: the loader's): every batch is full, a batch may straddle two of the stream's epochs,
        and every example is used equally often. Eval-mode loaders cycle through the examples in order,
        unaugmented. Batch ``t`` depends only on ``(seed, t, batch_size)``: start at ``start_step=t``
        to resume exactly; with one kernel batch per optimisation step, ``t`` is the number of steps
        done (``epoch * len(main_loader) + batch``). The epoch counter is untouched.
        """
        n = len(self.X)
        b = self.batch_size if batch_size is None else int(batch_size)
        seed = self.seed if seed is None else int(seed)
        if b < 1 or start_step < 0:
            raise ValueError(f"need batch_size >= 1 and start_step >= 0, got {b} and {start_step}")
        epoch, pos = divmod(start_step * b, n)
        cur = self._epoch_draws(epoch, stream=1, seed=seed)
        while True:
            parts, need = [], b
            while need > 0:
                take = min(need, n - pos)
                parts.append(cur[:, pos : pos + take])
                pos, need = pos + take, need - take
                if pos == n:
                    epoch, pos = epoch + 1, 0
                    cur = self._epoch_draws(epoch, stream=1, seed=seed)
            yield self._gather_batch(parts[0] if len(parts) == 1 else torch.cat(parts, 1))

    # ------------------------------------------------------------------ internals
    def _epoch_draws(self, epoch: int, stream: int, seed: int | None = None) -> torch.Tensor:
        """(4, N) int64 on the device: rows perm, i, j, flip; one host->device copy per epoch."""
        n = len(self.X)
        if not self.train:  # eval mode (forever() of an eval loader): in order, no augmentation
            packed = torch.zeros(4, n, dtype=torch.long, device=self.device)
            packed[0] = torch.arange(n, device=self.device)
            return packed
        perm, offsets, flips = draw_epoch(
            n, self.seed if seed is None else seed, epoch, pad=self.pad, flip=self.flip, stream=stream
        )
        packed = torch.cat([perm[None], offsets.T, flips[None].long()])
        if self.device.type == "cuda":  # pinned, so the one copy per epoch is truly asynchronous
            return packed.pin_memory().to(self.device, non_blocking=True)
        return packed.to(self.device)

    def _gather_batch(self, d: torch.Tensor) -> tuple:
        """The batch of examples ``d[0]``, augmented with the draws ``d[1:4]`` in train mode."""
        idx = d[0]
        xb = self.X.index_select(0, idx)
        if self.train:
            xb = random_crop_flip(xb, d[1:3].T, d[3].bool(), self.pad)
        x = normalize(xb, self._mean, self._std, channels_last=self.channels_last)
        return self._batch(x, self.y.index_select(0, idx) if self.y is not None else None, idx)

    def _eval_batch(self, s: int, e: int) -> tuple:
        x = normalize(self.X[s:e], self._mean, self._std, channels_last=self.channels_last)
        idx = torch.arange(s, e, device=self.device) if self.return_index else None
        return self._batch(x, self.y[s:e] if self.y is not None else None, idx)

    def _batch(self, x, y, idx) -> tuple:
        return (x, y, idx) if self.return_index else (x, y)

    def __repr__(self) -> str:
        N, C, H, W = self.X.shape
        return (f"DeviceLoader(N={N}, image={C}x{H}x{W}, batch_size={self.batch_size}, train={self.train}, "
                f"pad={self.pad}, flip={self.flip}, seed={self.seed}, epoch={self.epoch}, device={self.device})")
