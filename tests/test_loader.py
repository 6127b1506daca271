"""The device-resident loader: exact torchvision augmentation, its statistics, epochs, resume, the second stream."""
import math

import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from fkdlib.data.augment import draw_epoch, epoch_seed, normalize, random_crop_flip
from fkdlib.data.loader import DeviceLoader

CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # x = pixel / 255: pixels recoverable


def _images(n, h=32, w=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w or h), dtype=torch.uint8, generator=g)


def _reference(img, i, j, flip, pad):
    """torchvision's RandomCrop(H, padding=pad) + RandomHorizontalFlip() with the draws (i, j, flip)."""
    H, W = img.shape[-2:]
    out = TF.crop(TF.pad(img, [pad] * 4, fill=0), i, j, H, W)
    return TF.hflip(out) if flip else out


def _code_image(h, w):
    """Channel 0: row + 1, channel 1: column + 1, channel 2: 200; the zero padding stays 0."""
    img = torch.empty(3, h, w, dtype=torch.uint8)
    img[0] = (torch.arange(h) + 1)[:, None]
    img[1] = (torch.arange(w) + 1)[None, :]
    img[2] = 200
    return img


def _recover(out, pad):
    """The draws (i, j, flip) that produced crops ``out`` (B, 3, H, W) of ``_code_image``."""
    W = out.shape[-1]
    r = out[:, :, pad].long()  # output row `pad` = image row i: fully inside the image
    flip = r[:, 1, W // 2 + 1] < r[:, 1, W // 2]
    i = r[:, 0, W // 2] - 1
    j = torch.where(flip, r[:, 1, W - 1 - pad], r[:, 1, pad]) - 1
    return i, j, flip


def _to_pixels(x):
    """Loader output made with IDENTITY normalisation -> the uint8 pixels."""
    return (x.double() * 255).round().to(torch.uint8)


def _chi2_critical(df, z=3.090232):
    """Upper 0.1% point of chi-square(df), Wilson-Hilferty (accurate to < 1% here; no scipy needed)."""
    a = 2 / (9 * df)
    return df * (1 - a + z * math.sqrt(a)) ** 3


# ---------------------------------------------------------------- the augmentation itself


@pytest.mark.parametrize("h,w,pad", [(32, 32, 4), (96, 96, 4), (64, 48, 6), (32, 32, 0)])
def test_random_crop_flip_equals_torchvision_pixel_for_pixel(h, w, pad):
    X = _images(12, h, w, seed=h + w + pad)
    g = torch.Generator().manual_seed(1)
    offsets = torch.randint(0, 2 * pad + 1, (12, 2), generator=g)
    offsets[0], offsets[1] = torch.tensor([0, 0]), torch.tensor([2 * pad, 2 * pad])  # the extreme corners
    flips = torch.tensor([0, 1] * 6, dtype=torch.bool)
    out = random_crop_flip(X, offsets, flips, pad)
    assert out.dtype == torch.uint8 and out.shape == X.shape
    for b in range(12):
        ref = _reference(X[b], int(offsets[b, 0]), int(offsets[b, 1]), bool(flips[b]), pad)
        assert torch.equal(out[b], ref), (b, offsets[b].tolist(), bool(flips[b]))


def test_random_crop_flip_every_offset_and_flip_on_one_image():
    pad, img = 4, _images(1, 32, seed=7)[0]
    ij = torch.cartesian_prod(torch.arange(9), torch.arange(9))
    offsets, flips = ij.repeat(2, 1), torch.arange(2).repeat_interleave(81).bool()
    out = random_crop_flip(img.expand(162, -1, -1, -1), offsets, flips, pad)
    for b in range(162):
        assert torch.equal(out[b], _reference(img, int(offsets[b, 0]), int(offsets[b, 1]), bool(flips[b]), pad))
    i, j, f = _recover(random_crop_flip(_code_image(32, 32).expand(162, -1, -1, -1), offsets, flips, pad), pad)
    assert torch.equal(torch.stack([i, j], 1), offsets) and torch.equal(f, flips)  # the decoder is right


def test_normalize_is_to_tensor_plus_normalize_in_float32_and_channels_last():
    X = _images(4, 16)
    out = normalize(X, CIFAR100_MEAN, CIFAR100_STD)
    ref = TF.normalize(X.float() / 255, CIFAR100_MEAN, CIFAR100_STD)
    assert out.dtype == torch.float32 and torch.allclose(out, ref, atol=1e-6, rtol=0)
    ref64 = (X.double() / 255 - torch.tensor(CIFAR100_MEAN, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        CIFAR100_STD, dtype=torch.float64
    ).view(1, 3, 1, 1)
    assert torch.allclose(out.double(), ref64, atol=1e-5, rtol=0)
    cl = normalize(X, CIFAR100_MEAN, CIFAR100_STD, channels_last=True)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, out)


# ---------------------------------------------------------------- its statistics


@pytest.fixture(scope="module")
def loader_draws():
    """(i, j, flip) recovered from 20,000 augmented images of one train epoch, in batches of 250."""
    X = _code_image(32, 32).expand(20_000, -1, -1, -1).contiguous()
    loader = DeviceLoader(X, None, 250, train=True, seed=123, device="cpu", **IDENTITY)
    outs = [_recover(_to_pixels(x), 4) for x, _ in loader]
    return tuple(torch.cat(t) for t in zip(*outs))


def _torchvision_draws(n, seed=0):
    img, aug = _code_image(32, 32), T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = torch.stack([aug(img) for _ in range(n)])
    return _recover(out, 4)


def _check_uniform_and_independent(i, j, flip, n):
    counts = torch.bincount(i * 9 + j, minlength=81).double()
    assert counts.numel() == 81 and i.min() == 0 and i.max() == 8 and j.min() == 0 and j.max() == 8
    expected = n / 81
    assert ((counts - expected) ** 2 / expected).sum() < _chi2_critical(80)  # joint uniform on {0..8}^2
    table = counts.view(9, 9)
    outer = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / n
    assert ((table - outer) ** 2 / outer).sum() < _chi2_critical(64)  # i and j independent
    return counts / n


def test_offsets_uniform_independent_and_flips_fair_per_image(loader_draws):
    i, j, flip = loader_draws
    n = len(i)
    assert n == 20_000
    freq = _check_uniform_and_independent(i, j, flip, n)
    assert (freq - 1 / 81).abs().max() < 0.004  # every cell: 1/81 = 0.0123 within 4 standard errors
    assert abs(flip.double().mean().item() - 0.5) < 0.01
    # flips independent of the offsets, too
    assert abs(flip[i <= 3].double().mean().item() - flip[i > 4].double().mean().item()) < 0.03


def test_draws_vary_within_every_batch_not_one_per_batch(loader_draws):
    i, j, flip = (t.view(80, 250) for t in loader_draws)  # 80 batches of 250
    codes = i * 9 + j
    for b in range(80):
        assert len(torch.unique(codes[b])) > 60  # 250 draws over 81 cells
        assert 0.3 < flip[b].double().mean() < 0.7


def test_torchvision_statistics_are_the_same(loader_draws):
    i, j, flip = loader_draws
    ti, tj, tflip = _torchvision_draws(4000)
    _check_uniform_and_independent(ti, tj, tflip, 4000)
    for a, b in ((i, ti), (j, tj)):
        pa = torch.bincount(a, minlength=9).double() / len(a)
        pb = torch.bincount(b, minlength=9).double() / len(b)
        assert (pa - pb).abs().max() < 0.03  # ~5 standard errors of the difference
    assert abs(flip.double().mean() - tflip.double().mean()) < 0.03


def test_loader_output_is_random_crop_flip_of_the_epoch_draws():
    X, y = _images(50, 32, seed=3), torch.arange(50)
    loader = DeviceLoader(X, y, 16, train=True, seed=5, device="cpu", **IDENTITY)
    loader.set_epoch(2)
    xs, ys = zip(*loader)
    perm, offsets, flips = draw_epoch(50, 5, 2, pad=4)
    assert torch.equal(torch.cat(ys), perm)
    assert torch.equal(_to_pixels(torch.cat(xs)), random_crop_flip(X[perm], offsets, flips, 4))


def test_return_index_adds_each_batch_examples_indices_and_changes_nothing_else():
    X, y = _images(21, 8, seed=2), torch.arange(21) % 4
    kw = dict(seed=6, device="cpu", **IDENTITY)
    for train in (True, False):
        plain = list(DeviceLoader(X, y, 8, train=train, **kw))
        indexed = list(DeviceLoader(X, y, 8, train=train, return_index=True, **kw))
        assert len(plain) == len(indexed)
        for (x, yb), (xi, yi, idx) in zip(plain, indexed):
            assert torch.equal(x, xi) and torch.equal(yb, yi) and torch.equal(y[idx], yb)
        order = torch.cat([idx for *_, idx in indexed])
        assert torch.equal(order, draw_epoch(21, 6, 0, pad=4)[0] if train else torch.arange(21))


# ---------------------------------------------------------------- epochs, order, resume


def _epoch(loader, epoch=None):
    if epoch is not None:
        loader.set_epoch(epoch)
    xs, ys = zip(*loader)
    return list(xs), list(ys)


def test_every_example_once_per_epoch_and_epochs_differ():
    X, y = _images(103, 8), torch.arange(103)
    loader = DeviceLoader(X, y, 10, train=True, pad=2, seed=0, mean=CIFAR100_MEAN, std=CIFAR100_STD)
    e0, e1 = _epoch(loader), _epoch(loader)
    assert loader.epoch == 2
    for _, ys in (e0, e1):
        assert torch.equal(torch.sort(torch.cat(ys)).values, torch.arange(103))
    assert not torch.equal(torch.cat(e0[1]), torch.cat(e1[1]))
    assert not torch.equal(torch.cat(e0[1]), torch.arange(103))


def test_same_seed_and_epoch_same_batches_and_set_epoch_resumes_exactly():
    X, y = _images(60, 16), torch.arange(60)
    kw = dict(train=True, seed=11, mean=CIFAR100_MEAN, std=CIFAR100_STD)
    run = DeviceLoader(X, y, 8, **kw)
    uninterrupted = [_epoch(run) for _ in range(4)]
    resumed = DeviceLoader(X, y, 8, **kw)
    resumed.set_epoch(3)  # no replay of epochs 0..2
    for a, b in zip(uninterrupted[3], _epoch(resumed)):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    again = DeviceLoader(X, y, 8, **kw)
    again.load_state_dict({"epoch": 1, "seed": 11})
    assert all(torch.equal(u, v) for u, v in zip(uninterrupted[1][0], _epoch(again)[0]))
    assert again.state_dict() == {"epoch": 2, "seed": 11}
    mid = list(run.iter_epoch(2, start_batch=5))  # mid-epoch resume
    assert all(torch.equal(u, v[0]) for u, v in zip(uninterrupted[2][0][5:], mid))
    other_seed = DeviceLoader(X, y, 8, **{**kw, "seed": 12})
    assert not torch.equal(torch.cat(_epoch(other_seed, 3)[1]), torch.cat(uninterrupted[3][1]))


def test_epoch_draws_do_not_depend_on_the_batch_size():
    X, y = _images(40, 8), torch.arange(40)
    kw = dict(train=True, seed=2, pad=2, mean=CIFAR100_MEAN, std=CIFAR100_STD)
    a, b = _epoch(DeviceLoader(X, y, 8, **kw), 4), _epoch(DeviceLoader(X, y, 5, **kw), 4)
    assert torch.equal(torch.cat(a[0]), torch.cat(b[0])) and torch.equal(torch.cat(a[1]), torch.cat(b[1]))


def test_epoch_seed_formula():
    assert epoch_seed(3, 7) == 3 * 1_000_003 + 7
    assert epoch_seed(3, 7, stream=1) != epoch_seed(3, 7)


@pytest.mark.parametrize(
    "n,b,train,drop_last,sizes",
    [
        (23, 10, True, False, [10, 10, 3]),
        (21, 10, True, False, [10, 10]),  # train: a last batch of one is dropped
        (21, 10, False, False, [10, 10, 1]),  # eval: never
        (23, 10, True, True, [10, 10]),
        (23, 10, False, True, [10, 10]),
        (20, 10, True, False, [10, 10]),
        (5, 10, True, False, [5]),
        (1, 10, True, False, []),
        (3, 1, True, False, [1, 1, 1]),  # full batches of one are kept
    ],
)
def test_batch_sizes_and_len(n, b, train, drop_last, sizes):
    loader = DeviceLoader(_images(n, 8), torch.arange(n), b, train=train, drop_last=drop_last, **IDENTITY)
    got = [(len(x), len(y)) for x, y in loader]
    assert [s for s, _ in got] == sizes and [s for _, s in got] == sizes and len(loader) == len(sizes)


def test_eval_mode_is_in_order_unaugmented_and_exactly_normalize():
    X, y = _images(37, 32), torch.arange(37) % 5
    loader = DeviceLoader(X, y, 16, train=False, mean=CIFAR100_MEAN, std=CIFAR100_STD, channels_last=False)
    for _ in range(2):
        xs, ys = zip(*loader)
        assert torch.equal(torch.cat(xs), normalize(X, CIFAR100_MEAN, CIFAR100_STD))
        assert torch.equal(torch.cat(ys), y)


def test_unlabelled_data_yields_none_labels():
    loader = DeviceLoader(_images(10, 8), None, 4, train=True, **IDENTITY)
    assert [y for _, y in loader] == [None, None, None]


@pytest.mark.parametrize("train", [True, False])
def test_output_float32_channels_last_and_normalised_statistics(train):
    g = torch.Generator().manual_seed(0)
    # channels with different distributions, so a mix-up of mean/std per channel would show
    lo, hi = torch.tensor([0, 60, 120]).view(1, 3, 1, 1), torch.tensor([256, 200, 140]).view(1, 3, 1, 1)
    X = (lo + (hi - lo) * torch.rand(800, 3, 16, 16, generator=g)).floor().to(torch.uint8)
    loader = DeviceLoader(X, None, 128, train=train, pad=0, mean=CIFAR100_MEAN, std=CIFAR100_STD)
    xs = [x for x, _ in loader]
    assert all(x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last) for x in xs)
    out = torch.cat(xs).double()
    ref = (X.double() / 255 - torch.tensor(CIFAR100_MEAN, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        CIFAR100_STD, dtype=torch.float64
    ).view(1, 3, 1, 1)
    # pad=0: a train epoch is a permutation (plus flips) of the images: the same per-channel moments
    assert torch.allclose(out.mean((0, 2, 3)), ref.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(out.std((0, 2, 3)), ref.std((0, 2, 3)), atol=1e-5)
    plain = DeviceLoader(X, None, 128, train=train, pad=0, channels_last=False, mean=CIFAR100_MEAN, std=CIFAR100_STD)
    assert next(iter(plain))[0].is_contiguous()


# ---------------------------------------------------------------- the second stream


def test_forever_is_endless_full_balanced_and_deterministic():
    X, y = _images(50, 8), torch.arange(50)
    loader = DeviceLoader(X, y, 16, train=True, seed=4, pad=2, **IDENTITY)
    it = loader.forever()
    batches = [next(it) for _ in range(25)]  # 25 * 16 = 400 = 8 passes over the 50 examples
    assert all(len(x) == 16 and len(yb) == 16 for x, yb in batches)
    assert torch.bincount(torch.cat([yb for _, yb in batches]), minlength=50).tolist() == [8] * 50
    again = [next(loader.forever()) for _ in range(1)] + list(_take(loader.forever(start_step=1), 24))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    other = next(loader.forever(seed=5))
    assert not torch.equal(other[1], batches[0][1])
    assert loader.epoch == 0  # the main epoch counter is untouched


def _take(it, n):
    for _ in range(n):
        yield next(it)


def test_forever_resumes_at_any_step_and_takes_its_own_batch_size():
    X, y = _images(30, 8), torch.arange(30)
    loader = DeviceLoader(X, y, 4, train=True, seed=9, pad=2, **IDENTITY)
    ref = list(_take(loader.forever(batch_size=7), 12))  # straddles several of the stream's epochs
    for t in (0, 3, 4, 11):
        x, yb = next(loader.forever(start_step=t, batch_size=7))
        assert torch.equal(x, ref[t][0]) and torch.equal(yb, ref[t][1])
    assert all(len(x) == 7 for x, _ in ref)


def test_forever_is_independent_of_the_main_iteration():
    X, y = _images(64, 8), torch.arange(64)
    loader = DeviceLoader(X, y, 64, train=True, seed=0, **IDENTITY)
    main = next(iter(loader))[1]
    aux = next(loader.forever())[1]
    assert torch.equal(torch.sort(aux).values, torch.arange(64))  # one whole stream epoch ...
    assert not torch.equal(main, aux)  # ... in another order
    assert (main == aux).double().mean() < 0.2


def test_forever_of_an_eval_loader_cycles_in_order():
    X, y = _images(5, 8), torch.arange(5)
    loader = DeviceLoader(X, y, 3, train=False, **IDENTITY)
    ys = [yb.tolist() for _, yb in _take(loader.forever(), 3)]
    assert ys == [[0, 1, 2], [3, 4, 0], [1, 2, 3]]


# ---------------------------------------------------------------- validation and devices


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        DeviceLoader(_images(4).float(), None, 2, train=True, **IDENTITY)
    with pytest.raises(ValueError):
        DeviceLoader(_images(4), torch.arange(3), 2, train=True, **IDENTITY)
    with pytest.raises(ValueError):
        DeviceLoader(_images(4), None, 2, train=True, mean=(0.5,), std=(0.2,))
    with pytest.raises(ValueError):
        DeviceLoader(_images(4), None, 0, train=True, **IDENTITY)


def _accelerators():
    devs = []
    if torch.cuda.is_available():
        devs.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devs.append("mps")
    return devs


@pytest.mark.parametrize("device", _accelerators() or [pytest.param("none", marks=pytest.mark.skip("no GPU"))])
def test_an_accelerator_gives_the_cpu_batches(device):
    X, y = _images(70, 32), torch.arange(70)
    kw = dict(train=True, seed=3, mean=CIFAR100_MEAN, std=CIFAR100_STD)
    cpu, dev = DeviceLoader(X, y, 32, device="cpu", **kw), DeviceLoader(X, y, 32, device=device, **kw)
    for (a, ya), (b, yb) in zip(cpu, dev):
        assert b.device.type == device and torch.equal(ya, yb.cpu())
        assert torch.allclose(a, b.cpu(), atol=1e-5, rtol=0)
    a, b = next(cpu.forever(start_step=5)), next(dev.forever(start_step=5))
    assert torch.equal(a[1], b[1].cpu()) and torch.allclose(a[0], b[0].cpu(), atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_after_the_first_make_no_host_sync():
    X, y = _images(300, 32), torch.arange(300)
    loader = DeviceLoader(X, y, 64, train=True, device="cuda", mean=CIFAR100_MEAN, std=CIFAR100_STD)
    it = iter(loader)
    next(it)  # the epoch's draws are copied here
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in it:
            pass
    finally:
        torch.cuda.set_sync_debug_mode("default")
