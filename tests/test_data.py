import pytest
import torch

from fkdlib.data import CIFAR100_MEAN, per_class_indices, synthetic_images, to_float


def test_synthetic_images_are_reproducible_uint8_and_balanced():
    X, y = synthetic_images(5, num_classes=4, image_size=16, seed=3)
    X2, y2 = synthetic_images(5, num_classes=4, image_size=16, seed=3)
    assert X.dtype == torch.uint8 and X.shape == (20, 3, 16, 16)
    assert torch.equal(X, X2) and torch.equal(y, y2)
    assert torch.bincount(y).tolist() == [5, 5, 5, 5]
    assert not torch.equal(X, synthetic_images(5, num_classes=4, image_size=16, seed=4)[0])


def test_synthetic_classes_are_separable_by_their_mean_image():
    """Nearest class-mean on held-out images beats chance by far: the classes carry signal."""
    X, y = synthetic_images(40, num_classes=5, seed=0)
    Xf = X.float().flatten(1)
    means = torch.stack([Xf[:150][y[:150] == c].mean(0) for c in range(5)])
    pred = torch.cdist(Xf[150:], means).argmin(1)
    assert (pred == y[150:]).float().mean() > 0.6


def test_to_float_normalises_with_the_given_statistics():
    X = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = to_float(X, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert torch.allclose(out, torch.full_like(out, 2.0))
    zero = to_float(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    assert torch.allclose(zero[0, :, 0, 0], -torch.tensor(CIFAR100_MEAN) / torch.tensor([0.2675, 0.2565, 0.2761]))


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        synthetic_images(0)


def test_per_class_indices_are_balanced_and_grouped():
    y = torch.tensor([2, 0, 1, 0, 2, 1, 0, 2])
    idx = per_class_indices(y, 2)
    assert y[idx].tolist() == [0, 0, 1, 1, 2, 2]
    assert idx.tolist() == [1, 3, 2, 5, 0, 4]
