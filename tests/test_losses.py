import numpy as np
import pytest
import torch

import reference_maths as ref
from fkdlib.distill.checks import finite_checks
from fkdlib.distill.losses import feature_norm_penalty, fkd_loss, kd_loss, rkd_loss, sp_loss


def _t(*shape, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(grad)


# ---- FKD -------------------------------------------------------------------------------------
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("include_diagonal", [False, True])
def test_fkd_matches_float64_reference(normalize, include_diagonal):
    h_s, h_t1, h_t2 = _t(7, 5, seed=1), _t(7, 11, seed=2), _t(7, 3, seed=3)
    got = fkd_loss(h_s, [h_t1, h_t2], normalize=normalize, include_diagonal=include_diagonal)
    want = ref.fkd(h_s.numpy(), [h_t1.numpy(), h_t2.numpy()], normalize, include_diagonal)
    np.testing.assert_allclose(got.item(), want, rtol=1e-10)


def test_fkd_default_is_off_diagonal_normalised_and_differs_from_variants():
    h_s, h_t = _t(6, 4, seed=1), _t(6, 4, seed=2)
    base = fkd_loss(h_s, h_t)
    np.testing.assert_allclose(base.item(), ref.fkd(h_s.numpy(), [h_t.numpy()]), rtol=1e-10)
    # with a unit diagonal, including it only dilutes the mean by B(B-1)/B^2
    np.testing.assert_allclose(fkd_loss(h_s, h_t, include_diagonal=True).item(), base.item() * 5 / 6, rtol=1e-10)
    assert abs(fkd_loss(h_s, h_t, normalize=False).item() - base.item()) > 1e-3


def test_fkd_is_invariant_to_rescaling_each_example():
    h_s, h_t = _t(8, 6, seed=1), _t(8, 10, seed=2)
    s = torch.linspace(0.05, 40.0, 8, dtype=torch.float64).unsqueeze(1)
    base = fkd_loss(h_s, h_t)
    torch.testing.assert_close(fkd_loss(h_s * s, h_t), base)
    torch.testing.assert_close(fkd_loss(h_s, h_t * s.flip(0)), base)


def test_fkd_is_zero_for_equal_features_and_for_a_wider_teacher_with_the_same_kernel():
    h = _t(9, 4, seed=1)
    assert fkd_loss(h, h.clone()).item() == pytest.approx(0.0, abs=1e-14)
    W, _ = torch.linalg.qr(_t(12, 4, seed=5))  # (12, 4) with orthonormal columns: an isometry R^4 -> R^12
    h_wide = h @ W.T  # (9, 12), same inner products as h
    assert fkd_loss(h, h_wide).item() == pytest.approx(0.0, abs=1e-12)
    assert fkd_loss(h, _t(9, 12, seed=6)).item() > 1e-3


def test_fkd_ensemble_of_copies_equals_the_single_teacher():
    h_s, h_t = _t(6, 5, seed=1), _t(6, 8, seed=2)
    single = fkd_loss(h_s, h_t)
    for E in (1, 2, 4, 8):
        torch.testing.assert_close(fkd_loss(h_s, [h_t] * E), single)


def test_fkd_gradient_reaches_only_the_student():
    h_s, h_t = _t(5, 4, seed=1, grad=True), _t(5, 6, seed=2, grad=True)
    fkd_loss(h_s, [h_t]).backward()
    assert h_t.grad is None
    assert h_s.grad is not None and h_s.grad.abs().sum() > 0


def test_fkd_gradient_is_orthogonal_to_each_example_features():
    """A scale-invariant loss has, per example, a gradient orthogonal to that example's features."""
    h_s = _t(6, 5, seed=1, grad=True)
    fkd_loss(h_s, _t(6, 7, seed=2)).backward()
    torch.testing.assert_close((h_s.grad * h_s.detach()).sum(1), torch.zeros(6, dtype=torch.float64), atol=1e-12, rtol=0)


def test_gradchecks():
    h_s, h_t = _t(5, 4, seed=1, grad=True), _t(5, 3, seed=2)
    assert torch.autograd.gradcheck(lambda h: fkd_loss(h, h_t), (h_s,))
    assert torch.autograd.gradcheck(lambda h: fkd_loss(h, h_t, normalize=False), (h_s,))
    assert torch.autograd.gradcheck(lambda h: feature_norm_penalty(h, squared=False), (h_s,))
    assert torch.autograd.gradcheck(lambda z: kd_loss(z, _t(5, 4, seed=3), T=2.0), (h_s,))
    assert torch.autograd.gradcheck(lambda f: rkd_loss(f, _t(5, 6, seed=4)), (_t(5, 3, seed=5, grad=True),))
    assert torch.autograd.gradcheck(lambda g: sp_loss(g, _t(5, 2, 2, 2, seed=6)), (_t(5, 3, 2, 2, seed=7, grad=True),))


# ---- FR -------------------------------------------------------------------------------------
def test_feature_norm_penalty_known_values():
    h = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    assert feature_norm_penalty(h).item() == pytest.approx((9 + 16) / 2)
    assert feature_norm_penalty(h, squared=False).item() == pytest.approx((3 + 4) / 2)


# ---- KD -------------------------------------------------------------------------------------
def test_kd_matches_reference_and_is_zero_on_equal_logits():
    z_s, z_t1, z_t2 = _t(6, 10, seed=1), _t(6, 10, seed=2), _t(6, 10, seed=3)
    np.testing.assert_allclose(kd_loss(z_s, z_t1, T=4.0).item(), ref.kd(z_s.numpy(), [z_t1.numpy()], 4.0), rtol=1e-10)
    np.testing.assert_allclose(
        kd_loss(z_s, [z_t1, z_t2], T=2.0).item(), ref.kd(z_s.numpy(), [z_t1.numpy(), z_t2.numpy()], 2.0), rtol=1e-10
    )
    assert kd_loss(z_s, z_s.clone()).item() == pytest.approx(0.0, abs=1e-12)


def test_kd_refuses_different_label_spaces():
    with pytest.raises(ValueError, match="share a label space.*10 classes.*5"):
        kd_loss(_t(4, 10), _t(4, 5))


# ---- RKD, SP --------------------------------------------------------------------------------
def test_rkd_matches_reference_and_ignores_a_global_scale():
    f_s, f_t = _t(6, 5, seed=1), _t(6, 7, seed=2)
    got = rkd_loss(f_s, f_t)
    np.testing.assert_allclose(got.item(), ref.rkd(f_s.numpy(), f_t.numpy()), rtol=1e-9)
    torch.testing.assert_close(rkd_loss(3.0 * f_s, f_t), got)
    assert rkd_loss(f_s, f_s.clone()).item() == pytest.approx(0.0, abs=1e-10)
    np.testing.assert_allclose(
        rkd_loss(f_s, f_t, w_dist=1.0, w_angle=0.0).item(), ref.rkd(f_s.numpy(), f_t.numpy(), 1.0, 0.0), rtol=1e-9
    )


def test_sp_matches_reference_sums_over_pairs_and_ignores_a_global_scale():
    g_s, g_t = _t(5, 3, 4, 4, seed=1), _t(5, 8, 2, 2, seed=2)
    got = sp_loss(g_s, g_t)
    np.testing.assert_allclose(got.item(), ref.sp(g_s.numpy(), g_t.numpy()), rtol=1e-10)
    torch.testing.assert_close(sp_loss(10.0 * g_s, g_t), got)
    torch.testing.assert_close(sp_loss([g_s, g_s], [g_t, g_t]), 2 * got)


def test_baselines_send_no_gradient_to_the_teacher():
    f_s, f_t = _t(5, 4, seed=1, grad=True), _t(5, 4, seed=2, grad=True)
    (rkd_loss(f_s, f_t) + sp_loss(f_s, f_t) + kd_loss(f_s, f_t)).backward()
    assert f_t.grad is None and f_s.grad.abs().sum() > 0


# ---- errors ---------------------------------------------------------------------------------
def test_mismatched_batches_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(6, 5\).*\(4, 7\)"):
        fkd_loss(_t(6, 5), _t(4, 7))
    with pytest.raises(ValueError, match=r"\(6, 5\).*\(4, 5\)"):
        rkd_loss(_t(6, 5), _t(4, 5))
    with pytest.raises(ValueError, match="batch sizes differ"):
        sp_loss(_t(6, 2, 2, 2), _t(4, 2, 2, 2))


@pytest.mark.parametrize("loss", [fkd_loss, rkd_loss, sp_loss])
def test_pairwise_losses_need_two_examples(loss):
    with pytest.raises(ValueError, match="at least 2"):
        loss(_t(1, 5), _t(1, 5))


def test_non_finite_inputs_are_reported_unless_checks_are_off():
    bad = _t(4, 3).clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="h_student contains 1 non-finite"):
        fkd_loss(bad, _t(4, 3))
    with pytest.raises(ValueError, match=r"h_teacher\[1\] contains 1 non-finite"):
        fkd_loss(_t(4, 3), [_t(4, 3), bad])
    with finite_checks(False):
        assert torch.isnan(fkd_loss(bad, _t(4, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        kd_loss(_t(4, 3), bad)
