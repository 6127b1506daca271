"""The multi-view simulation (fkdlib.theory.data, fkdlib.theory): data model, smoothed ReLU, training, FKD."""
import math

import pytest
import torch

from fkdlib.theory import simulation as theory
from fkdlib.theory import data as theory_data
from fkdlib.theory.data import MultiViewSpec


def small_task(seed=0, **kw):
    return theory_data.make_task(seed, n_train=120, n_pool=80, n_test=60, **kw)


def test_views_are_orthonormal():
    V = theory_data.make_views(10, 100, torch.Generator().manual_seed(3)).reshape(20, 100).double()
    assert torch.allclose(V @ V.T, torch.eye(20, dtype=torch.float64), atol=1e-6)


def test_views_need_room():
    with pytest.raises(ValueError, match="d >= 2k"):
        theory_data.make_views(10, 15, torch.Generator())


def coefficients(data, views):
    """(n, P, k, 2) coefficient of every view on every patch (exact when the Gaussian noise is off)."""
    return torch.einsum("npd,cld->npcl", data.X.double(), views.double())


def test_multi_view_points_carry_both_views_single_view_points_one():
    spec = MultiViewSpec(sigma_p=0.0)
    g = torch.Generator().manual_seed(0)
    views = theory_data.make_views(spec.k, spec.d, g)
    data = theory_data.sample(400, views, spec, g)
    assert 10 < data.single.sum() < 80                       # a fraction mu = 0.1 of single-view points
    A = coefficients(data, views)                            # (n, P, k, 2)
    n = torch.arange(len(data))
    own = A[n, :, data.y]                                    # (n, P, 2): this point's own two views
    strong = (own > spec.z[0] - 1e-4).sum(1)                 # patches showing a view at full strength
    weak = ((own - spec.rho).abs() < 1e-4).sum(1)            # patches showing it at the weak level rho
    multi = ~data.single
    assert (strong[multi] == spec.C).all()                   # both views, C patches each
    shown = data.view[data.single]
    s_strong, s_weak = strong[data.single], weak[data.single]
    rows = torch.arange(len(shown))
    assert (s_strong[rows, shown] == spec.C).all() and (s_strong[rows, 1 - shown] == 0).all()
    assert (s_weak[rows, 1 - shown] == spec.C).all()         # the other view only weakly
    assert (data.view[multi] == -1).all()
    # feature noise: views of *other* classes only, never above alpha's upper end, on n_feature_noise patches
    other = A.clone()
    other[n, :, data.y] = 0
    assert other.max() <= spec.alpha[1] + 1e-4
    assert ((other.abs() > 1e-4).sum((1, 2, 3)) == spec.n_feature_noise).all()


def test_forced_kinds():
    task = small_task()
    assert task.test_single.single.all() and not task.test_multi.single.any()
    assert set(task.test_single.view.tolist()) == {0, 1}


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = small_task(7), small_task(7), small_task(8)
    for part in ("train", "pool", "test_single", "test_multi"):
        assert torch.equal(getattr(a, part).X, getattr(b, part).X)
        assert torch.equal(getattr(a, part).y, getattr(b, part).y)
    assert torch.equal(a.views, b.views)
    assert not torch.allclose(a.train.X, c.train.X)


@pytest.mark.parametrize("q,thr", [(3, 1.0), (4, 1.0), (4, 0.3)])
def test_smoothed_relu_continuous_with_continuous_derivative_at_threshold(q, thr):
    eps = 1e-7
    z = torch.tensor([thr - eps, thr, thr + eps], dtype=torch.float64, requires_grad=True)
    f = theory.smoothed_relu(z, q, thr)
    (grad,) = torch.autograd.grad(f.sum(), z)
    assert f[1].item() == pytest.approx(thr / q, rel=1e-12)          # both pieces meet at thr / q
    assert abs(f[2] - f[0]).item() < 3 * eps                          # continuous (slope 1 near thr)
    assert grad[0].item() == pytest.approx(1.0, abs=1e-5)             # derivative from below -> 1
    assert grad[2].item() == pytest.approx(1.0, abs=1e-12)            # and from above
    # values of each piece, and zero below 0
    x = torch.tensor([-1.0, 0.0, thr / 2, 2 * thr], dtype=torch.float64)
    expect = torch.tensor([0.0, 0.0, (thr / 2) ** q / (q * thr ** (q - 1)), 2 * thr - (1 - 1 / q) * thr],
                          dtype=torch.float64)
    assert torch.allclose(theory.smoothed_relu(x, q, thr), expect, atol=1e-14)


def test_smoothed_relu_gradient_matches_finite_differences():
    z = torch.tensor([-0.5, 0.1, 0.4, 0.9, 1.3, 2.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: theory.smoothed_relu(t, 4, 1.0), (z,))


def test_training_lowers_the_loss():
    task = small_task()
    nets = theory.Nets.init([0, 1], k=10, m=4, d=task.spec.d)
    hist = theory.train(nets, task.train, steps=60, lr=2.0, views=task.views, record_every=20, progress=False)
    assert hist["ce"].shape == (60, 2)
    assert (hist["ce"][-1] < 0.8 * hist["ce"][0]).all()
    assert hist["views_t"].shape == (4, 2, 10, 2) and hist["steps_t"] == [0, 20, 40, 60]


def fkd_setup():
    task = small_task()
    teachers = theory.Nets.init([5, 6], k=10, m=4, d=task.spec.d)
    theory.train(teachers, task.train, steps=20, lr=2.0, progress=False)
    teachers.W.requires_grad_(True)
    return task, teachers


def test_fkd_gradients_do_not_reach_the_teachers():
    task, teachers = fkd_setup()
    W_teachers = teachers.W.detach().clone()
    feats = theory.teacher_pool_features(teachers, task.pool.X, [[0, 1]])
    assert not feats[0].requires_grad                          # computed without a graph
    feats = [feats[0].clone().requires_grad_(True)]             # even a leaf that asks for gradients gets none
    students = theory.Nets.init([0], k=10, m=4, d=task.spec.d)
    hist = theory.train(students, task.train, steps=3, lr=2.0, teacher_feats=feats, pool=task.pool.X, lam_kd=100.0,
                        kd_batch=32, progress=False)
    assert feats[0].grad is None and teachers.W.grad is None
    assert torch.equal(teachers.W.detach(), W_teachers)
    assert (hist["fkd"] > 0).all()


def test_fkd_term_changes_the_student_and_zero_lambda_does_not():
    task, teachers = fkd_setup()
    feats = theory.teacher_pool_features(teachers, task.pool.X, [[0], [0]], combine="mean")
    runs = {}
    for lam in (0.0, 100.0):
        s = theory.Nets.init([0, 1], k=10, m=4, d=task.spec.d)
        theory.train(s, task.train, steps=2, lr=2.0, teacher_feats=feats, pool=task.pool.X, lam_kd=[lam, 0.0],
                     kd_batch=32, progress=False)
        runs[lam] = s.W
    assert not torch.allclose(runs[0.0][0], runs[100.0][0])   # student 0 felt the kernel term
    assert torch.equal(runs[0.0][1], runs[100.0][1])          # student 1 (lambda 0) did not


def test_raw_kernel_term_is_scale_free_in_the_teacher():
    h_s, h_t = torch.rand(16, 8, dtype=torch.float64), torch.rand(16, 12, dtype=torch.float64)
    idx = torch.arange(16)
    a = theory._fkd_term(h_s, h_t, idx, normalize=False)
    b = theory._fkd_term(3 * h_s, 3 * h_t, idx, normalize=False)  # both on a 3x scale: same loss
    assert a.item() == pytest.approx(b.item(), rel=1e-10)


def test_view_measurements():
    task = small_task()
    k, m, d = 10, 2, task.spec.d
    W = torch.zeros(1, k * m, d)
    W[0, 0] = 2.0 * task.views[0, 0]          # class 0, neuron 0: view 0 of its own class, past thr = 1
    W[0, 2] = 0.5 * task.views[1, 1]          # class 1: view 1 below thr
    W[0, 4] = 3.0 * task.views[0, 1]          # class 2's neuron holds view 1 of class 0: a wrong block
    nets = theory.Nets(W, k)
    phi = nets.view_correlations(task.views)
    assert phi[0, 0, 0].item() == pytest.approx(2.0, abs=1e-5) and phi[0, 1, 1].item() == pytest.approx(0.5, abs=1e-5)
    L = nets.learned(task.views)
    assert L.sum() == 1 and L[0, 0, 0]
    assert nets.wrong_block_views(task.views).item() == pytest.approx(1 / k)


def test_summarise_splits_accuracy_by_who_learned_the_view():
    task = small_task()
    data = task.test_single
    learned = torch.zeros(3, 10, 2, dtype=torch.bool)
    learned[0, :, 0] = True                    # net 0 (the student): view 0 of every class
    learned[1, :, 1] = True                    # net 1 (its teacher): view 1
    correct = (data.view == 0)[None]           # the student gets exactly its own views right
    out = theory.summarise(correct, data, learned, students=[0], teachers=[[1]])
    assert out["union_pred"] == 1.0                                   # student + teacher know every view
    assert out["acc_own"] == 1.0 and out["acc_teacher_only"] == 0.0 and math.isnan(out["acc_neither"])
    assert out["mean"] == pytest.approx(float((data.view == 0).float().mean()))
    alone = theory.summarise(correct, data, learned, students=[0], teachers=[[]])
    assert alone["union_pred"] == pytest.approx(out["mean"])        # no teacher: only its own views


def test_a_diverging_net_is_frozen_and_flagged_without_touching_the_others():
    task = small_task()
    nets = theory.Nets.init([0, 1], k=10, m=4, d=task.spec.d)
    nets.W[1, 0] = float("inf")                         # net 1 is broken: its loss is not finite
    before = nets.W.clone()
    hist = theory.train(nets, task.train, steps=5, lr=2.0, progress=False)
    assert hist["diverged_at"] == [None, 0]
    assert torch.equal(nets.W[1], before[1])            # frozen
    alone = theory.Nets.init([0], k=10, m=4, d=task.spec.d)
    theory.train(alone, task.train, steps=5, lr=2.0, progress=False)
    assert torch.allclose(nets.W[0], alone.W[0])        # net 0 trained exactly as if alone
