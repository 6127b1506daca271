import numpy as np
import pytest
import torch

import reference_maths as ref
from fkdlib.distill.kernels import ensemble_kernel, feature_kernel, kernel_alignment, off_diagonal


def _feats(B=6, D=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=g, dtype=dtype)


def test_normalised_kernel_matches_float64_reference():
    h = _feats()
    np.testing.assert_allclose(feature_kernel(h).numpy(), ref.cosine_kernel(h.numpy()), rtol=1e-12, atol=1e-12)


def test_normalised_kernel_is_symmetric_with_unit_diagonal_and_bounded():
    K = feature_kernel(_feats(B=20, D=7, dtype=torch.float32))
    torch.testing.assert_close(K, K.T)
    torch.testing.assert_close(K.diagonal(), torch.ones(20))
    assert K.abs().max() <= 1 + 1e-6


def test_raw_kernel_is_the_gram_matrix():
    h = _feats()
    np.testing.assert_allclose(feature_kernel(h, normalize=False).numpy(), h.numpy() @ h.numpy().T, rtol=1e-12)


def test_feature_maps_are_flattened():
    x = _feats(B=4, D=2 * 3 * 3).reshape(4, 2, 3, 3)
    torch.testing.assert_close(feature_kernel(x), feature_kernel(x.reshape(4, -1)))


def test_normalised_kernel_ignores_per_example_scale_and_rotations():
    h = _feats(B=8, D=6)
    scales = torch.linspace(0.1, 30.0, 8, dtype=torch.float64).unsqueeze(1)
    Q, _ = torch.linalg.qr(_feats(B=6, D=6, seed=3))
    torch.testing.assert_close(feature_kernel(h * scales), feature_kernel(h))
    torch.testing.assert_close(feature_kernel(h @ Q), feature_kernel(h))
    # the raw kernel sees the scale
    assert not torch.allclose(feature_kernel(h * scales, normalize=False), feature_kernel(h, normalize=False))


def test_ensemble_kernel_is_the_mean_and_allows_different_widths():
    hs = [_feats(D=3, seed=1), _feats(D=9, seed=2), _feats(D=4, seed=3)]
    expected = sum(ref.cosine_kernel(h.numpy()) for h in hs) / 3
    np.testing.assert_allclose(ensemble_kernel(hs).numpy(), expected, rtol=1e-12)
    h = _feats()
    torch.testing.assert_close(ensemble_kernel([h, h, h, h]), feature_kernel(h))


def test_ensemble_kernel_rejects_mismatched_batches():
    with pytest.raises(ValueError, match=r"\(6, 5\).*\(5, 5\)"):
        ensemble_kernel([_feats(B=6), _feats(B=5)])


def test_off_diagonal_takes_exactly_the_pairs_i_ne_j():
    K = torch.arange(16.0).reshape(4, 4)
    off = off_diagonal(K)
    assert off.shape == (12,)
    assert set(off.tolist()) == set(range(16)) - {0, 5, 10, 15}


def test_kernel_alignment_matches_reference_cka_and_is_scale_invariant():
    A, B_ = feature_kernel(_feats(seed=1)), feature_kernel(_feats(seed=2))
    H = np.eye(6) - np.ones((6, 6)) / 6
    a, b = H @ A.numpy() @ H, H @ B_.numpy() @ H
    expected = np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b))
    np.testing.assert_allclose(kernel_alignment(A, B_).item(), expected, rtol=1e-10)
    np.testing.assert_allclose(kernel_alignment(A, 7.0 * A).item(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(kernel_alignment(A, B_).item(), kernel_alignment(B_, A).item(), rtol=1e-12)
    assert kernel_alignment(A, B_).item() < 0.99


def test_half_precision_features_give_a_float32_kernel():
    h = _feats(dtype=torch.float32)
    K = feature_kernel(h.bfloat16())
    assert K.dtype == torch.float32
    torch.testing.assert_close(K, feature_kernel(h), atol=2e-2, rtol=0)


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="batch dimension"):
        feature_kernel(torch.ones(5))
    with pytest.raises(ValueError, match="non-finite"):
        feature_kernel(torch.tensor([[1.0, float("nan")], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="square"):
        off_diagonal(torch.ones(3, 4))
