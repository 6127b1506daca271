"""The method comparison's protocol: the split, the pairing of seeds, the paired interval and the tuning rule."""
import json
import math

import numpy as np
import pytest
import torch

from fkdlib.experiments import comparison, tuning
from fkdlib.experiments import splits as cd
from fkdlib.experiments import config
from fkdlib.data import ImageData
from fkdlib.distill.methods import Method
from fkdlib.stats import paired_ci95, verdict
from fake_runs import fake_run


def _indexed_images(n, split):
    """Images whose pixels spell their own index, so any overlap between splits would show."""
    idx = torch.arange(n)
    X = torch.zeros(n, 3, 8, 8, dtype=torch.uint8)
    X[:, 0, 0, 0], X[:, 0, 0, 1], X[:, 0, 0, 2] = idx % 256, (idx // 256) % 256, idx // 65536
    return ImageData(X, idx % 10, [str(c) for c in range(10)], "indexed", split)


def _ids(data):
    x = data.X[:, 0, 0].long()
    return set((x[:, 0] + 256 * x[:, 1] + 65536 * x[:, 2]).tolist())


def test_the_validation_split_is_fixed_held_out_and_the_students_images_are_the_teachers(monkeypatch):
    monkeypatch.setattr(cd, "load_train_test", lambda *a, **k: (_indexed_images(3000, "train"),
                                                                _indexed_images(500, "test")))
    cfg = dict(dataset="indexed", val_size=600, teacher_size=1200, train_size=400)
    a, b = cd.comparison_data(cfg), cd.comparison_data(cfg)
    val, teacher, student = _ids(a["val"]), _ids(a["teacher_train"]), _ids(a["train"])
    assert len(val) == 600 and len(teacher) == 1200 and len(student) == 400 and len(a["test"]) == 500
    assert not val & teacher and not val & student, "validation images must be held out of all training"
    assert student <= teacher
    assert all(_ids(a[k]) == _ids(b[k]) for k in a), "the split must be the same on every call"
    assert val != set(range(600)), "the split is a seeded draw, not the first images (CIFAR files are class-ordered)"


def test_seed_s_gives_every_method_the_same_initial_weights_and_first_batch(monkeypatch, tmp_path):
    """Pairing: what differs between two methods of one seed is the loss, not the draw."""
    from fkdlib.engine import train as engine
    from fkdlib.data import load_synthetic

    train_d, test_d = load_synthetic("train", n_per_class=8, num_classes=4, image_size=16), \
        load_synthetic("test", n_per_class=4, num_classes=4, image_size=16)
    teacher_dir = tmp_path / "teacher"
    recipe = engine.Recipe(epochs=1, batch_size=8, lr=0.01, milestones=(), weight_decay=0.0, eval_batch_size=16,
                           probe_size=8)
    engine.train("resnet8", train_d, test_d, recipe, teacher_dir, seed=5, progress=False)
    from fkdlib.models.teachers import load_teacher
    teacher = load_teacher(teacher_dir / engine.MODEL)

    seen = []

    class Stop(Exception):
        pass

    def first_step(self, xb, yb, kd_x=None):
        seen.append((xb.clone(), yb.clone(), {k: v.clone() for k, v in self.student.state_dict().items()}))
        raise Stop

    monkeypatch.setattr(engine.TrainStep, "__call__", first_step)
    for name, seed in [("none", 3), ("kd", 3), ("fkd", 3), ("fr", 3), ("none", 4)]:
        with pytest.raises(Stop):
            engine.train("resnet8", train_d, test_d, recipe, tmp_path / f"{name}{seed}", method=Method(name),
                         teachers=[teacher], seed=seed, progress=False)
    (x0, y0, w0), *same, (x4, _, w4) = seen
    for x, y, w in same:
        assert torch.equal(x, x0) and torch.equal(y, y0)
        assert all(torch.equal(w[k], w0[k]) for k in w0)
    assert not torch.equal(x4, x0) and not all(torch.equal(w4[k], w0[k]) for k in w0), "another seed differs"


def _t_quantile_975(df: int) -> float:
    """Student's t 97.5% quantile by integrating its density (independent of fkdlib's table)."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    xs = np.linspace(0, 40, 400_001)
    pdf = c * (1 + xs ** 2 / df) ** (-(df + 1) / 2)
    cdf = 0.5 + np.concatenate([[0], np.cumsum((pdf[1:] + pdf[:-1]) / 2 * np.diff(xs))])
    return float(np.interp(0.975, cdf, xs))


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_the_paired_interval_matches_an_independent_computation(n):
    rng = np.random.default_rng(n)
    a = {s: 70 + rng.normal() for s in range(n)}
    b = {s: a[s] - 0.5 + 0.3 * rng.normal() for s in range(n)}
    b[99] = 1.0  # a seed only one method has is not paired
    got = paired_ci95(a, b)
    d = np.array([a[s] - b[s] for s in range(n)])
    want = _t_quantile_975(n - 1) * d.std(ddof=1) / math.sqrt(n)
    assert got["n"] == n and got["seeds"] == list(range(n))
    assert got["mean"] == pytest.approx(d.mean()) and got["ci95"] == pytest.approx(want, rel=2e-3)


def test_pairing_removes_the_seed_to_seed_spread():
    a = {s: 60.0 + 5 * s for s in range(5)}       # seeds differ a lot ...
    b = {s: a[s] - 1.0 - 0.1 * (s % 2) for s in range(5)}  # ... but a beats b on every one
    d = paired_ci95(a, b)
    assert d["mean"] - d["ci95"] > 0
    assert "better" in verdict(d, "a - b")
    assert "no difference shown" in verdict(paired_ci95(a, {s: a[s] + (-1) ** s for s in range(5)}), "a - c")


def test_the_choice_is_clear_only_beyond_twice_the_validation_standard_error():
    tries = [{"run": "x1", "val_acc": {0: 60.0}}, {"run": "x3", "val_acc": {0: 61.0}},
             {"run": "x9", "val_acc": {0: 50.0}}]
    pick = tuning.choose(tries, val_size=5000)
    assert pick["run"] == "x3" and pick["margin"] == pytest.approx(1.0)
    assert pick["two_se"] == pytest.approx(200 * math.sqrt(0.61 * 0.39 / 5000))  # 1.38 points
    assert not pick["clear"] and pick["contenders"] == ["x3", "x1"]
    assert tuning.choose(tries, val_size=50_000)["clear"]  # a larger split resolves a 1-point margin


def _fake_run(grid, method, seed, val):
    fake_run(grid.run_dir(method, seed), val)


def test_a_close_choice_gets_another_seed_for_its_contenders_only(tmp_path, monkeypatch):
    sizes = dict(config._SIZES["method_comparison"]["smoke"], methods=["none", "kd"], seeds=[0, 1, 2],
                 val_size=5000, tuning=dict(config._TUNING, max_seeds=2))
    monkeypatch.setitem(config._SIZES, "method_comparison", {"smoke": sizes})
    grid = comparison.Grid("smoke", tmp_path)
    kd = comparison.candidates("kd", grid.tuning, {})
    _fake_run(grid, Method("none"), 0, 55.0)
    for m, val in zip(kd, (60.0, 61.0, 50.0)):
        _fake_run(grid, m, 0, val)
    todo, chosen = grid.plan()
    tune = [(tuning.run_name(m), s) for role, m, s in todo if role == "tune"]
    assert sorted(tune) == [("kd_w0.3", 1), ("kd_w0.9", 1)] and "kd" not in chosen
    _fake_run(grid, kd[0], 1, 63.0)
    _fake_run(grid, kd[1], 1, 61.0)
    todo, chosen = grid.plan()
    assert tuning.run_name(chosen["kd"]) == "kd_w0.3"  # best mean over the two seeds: 61.5 vs 61.0
    finals = [(tuning.run_name(m), s) for role, m, s in todo if role == "final"]
    assert ("kd_w0.3", 2) in finals and ("kd_w0.3", 0) not in finals  # tuning runs are reused as finals
    table = grid.choices()[1]["kd"]
    assert len(table["rounds"]) == 2 and {t["run"] for t in table["rounds"][1]} == {"kd_w0.3", "kd_w0.9"}


def test_fkd_tries_its_regulariser_at_the_lambda_chosen_without_it_and_fr_only_controls_it():
    tuning = config._TUNING
    assert comparison.candidates("fkd", tuning, {}) is None
    nofr = Method("fkd-nofr", lam_kd=300.0)
    cands = comparison.candidates("fkd", tuning, {"fkd-nofr": nofr})
    assert cands[0] is nofr and all(c.lam_kd == 300.0 for c in cands)
    assert {(c.lam_fr, c.fr_squared) for c in cands[1:]} == {(f, sq) for f in tuning["fr_lams"] for sq in (True, False)}
    fkd = Method("fkd", lam_kd=300.0, lam_fr=1e-3, fr_squared=False)
    (fr,) = comparison.candidates("fr", tuning, {"fkd": fkd})
    assert fr.name == "fr" and fr.lam_fr == 1e-3 and not fr.fr_squared and not fr.needs_teacher


@pytest.mark.parametrize("squared", [True, False])
def test_the_fr_only_control_is_cross_entropy_plus_the_regulariser_and_needs_no_teacher(squared):
    from fkdlib.distill.methods import loss_terms

    torch.manual_seed(0)
    h, logits, y = torch.randn(16, 8, dtype=torch.float64), torch.randn(16, 5, dtype=torch.float64), \
        torch.randint(0, 5, (16,))
    terms = loss_terms(Method("fr", lam_fr=0.03, fr_squared=squared), [h], logits, y, teacher_outputs=[])
    norms = torch.sqrt((h ** 2).sum(1))
    want_fr = 0.03 * (norms ** 2 if squared else norms).mean()
    assert set(terms) == {"ce", "fr"}
    assert torch.allclose(terms["fr"], want_fr) and torch.allclose(terms["ce"], torch.nn.functional.cross_entropy(logits, y))
    assert Method("fr").lam_kd == 0.0 and not Method("fr").needs_teacher


def _fake_norm_run(grid, method, seed, val, norm):
    fake_run(grid.run_dir(method, seed), val, feature_norm=norm)


def _converged(monkeypatch, tmp_path, **changes):
    sizes = dict(config._SIZES["method_comparison_converged"]["smoke"], val_size=100_000, **changes)
    monkeypatch.setitem(config._SIZES, "method_comparison_converged", {"smoke": sizes})
    return comparison.ConvergedGrid("smoke", tmp_path)


def test_a_search_whose_choice_is_an_edge_extends_past_it_until_the_choice_is_interior(tmp_path, monkeypatch):
    grid = _converged(monkeypatch, tmp_path, methods=["kd"], seeds=[0, 1],
                      tuning=dict(config._CONVERGED_TUNING, multipliers=[1.0, 3.0], max_extend=3))
    peak = 0.1  # validation accuracy peaks at a tenth of RepDistiller's weight: two rungs below the grid
    for _ in range(10):
        todo, chosen = grid.plan()
        tune = [(m, s) for role, m, s in todo if role == "tune"]
        if not tune:
            break
        assert {s for _, s in tune} == {90}, "tuning runs use the tuning seed, never a final's"
        for m, s in tune:
            mult = m.lam_kd / 0.9
            _fake_run(grid, m, s, 60.0 - 10 * abs(math.log10(mult / peak)))
    table = grid.choices()[1]["kd"]
    assert table["tried"] == pytest.approx([0.03, 0.1, 0.3, 1.0, 3.0]) and table["bracketed"]
    assert chosen["kd"].lam_kd == pytest.approx(0.09)
    from fkdlib.viz.regime import weight_searches  # the figure rings the choice where the search put it
    ax = weight_searches({"tuning": {"kd": table}}).axes[0]
    ring = [line for line in ax.lines if line.get_markersize() == 14]
    assert len(ring) == 1 and ring[0].get_xdata()[0] == pytest.approx(0.1) and "bracketed" in ax.get_title()
    assert {s for role, m, s in todo if role == "final"} == {0, 1}


def test_an_extension_stops_at_max_extend_and_says_the_choice_is_not_bracketed(tmp_path, monkeypatch):
    grid = _converged(monkeypatch, tmp_path, methods=["rkd"], seeds=[0],
                      tuning=dict(config._CONVERGED_TUNING, multipliers=[1.0, 3.0], max_extend=1))
    while tune := [m for role, m, s in grid.plan()[0] if role == "tune"]:
        for m in tune:
            _fake_run(grid, m, 90, 50.0 + m.lam_kd)  # bigger is always better
    table = grid.choices()[1]["rkd"]
    assert table["tried"] == [1.0, 3.0, 10.0] and table["run"] == "rkd_w10" and table["bracketed"] is False


def test_tuning_seeds_that_are_final_seeds_are_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="also final seeds"):
        _converged(monkeypatch, tmp_path, seeds=[0, 90])


def test_fkds_regulariser_climbs_until_it_moves_the_feature_norm_by_a_fifth(tmp_path, monkeypatch):
    grid = _converged(monkeypatch, tmp_path, methods=["fkd"], seeds=[0],
                      tuning=dict(config._CONVERGED_TUNING, fkd_lams=[30.0, 100.0], fr_lams=[1e-3, 1e-2],
                                  max_extend=3))
    nofr = [Method("fkd-nofr", lam_kd=lam) for lam in (30.0, 100.0)]
    _fake_norm_run(grid, nofr[0], 90, 60.0, 4.0)
    _fake_norm_run(grid, nofr[1], 90, 55.0, 4.0)
    # no FR wins every time; a weight of w shrinks the norm by 10 w (0.001 -> 1%, 0.01 -> 10%, 0.03 -> 30%)
    while tune := [m for role, m, s in grid.plan()[0] if role == "tune"]:
        for m in tune:
            _fake_norm_run(grid, m, 90, 59.0, 4.0 * (1 - 10 * m.lam_fr))
    table = grid.choices()[1]["fkd"]
    assert table["run"] == "fkd-nofr_w30" and table["tried"] == [1e-3, 1e-2, 3e-2] and table["bracketed"]
    assert table["axis"]["runs"] == {"fkd_w30_fr0.001sq": 1e-3, "fkd_w30_fr0.01sq": 1e-2, "fkd_w30_fr0.03sq": 3e-2}
    assert table["fr_norm_change"] == pytest.approx({r: -10 * v for r, v in table["axis"]["runs"].items()})


def test_the_registered_family_is_judged_with_holm_only_once_every_final_is_in(tmp_path, monkeypatch):
    grid = _converged(monkeypatch, tmp_path, seeds=[0, 1, 2], family=[["kd", "none"], ["rkd", "none"]])
    by_seed = {"none": {0: 50.0, 1: 51.0, 2: 52.0}, "kd": {0: 53.0, 1: 54.1, 2: 54.9}, "rkd": {0: 50.0, 1: 51.5}}
    pending = grid.registered_family(by_seed)["family"]
    assert pending["complete"] is False and pending["results"] == {} and pending["tuning_seeds"] == [90, 91]
    by_seed["rkd"][2] = 51.0
    fam = grid.registered_family(by_seed)["family"]
    assert fam["complete"] and fam["correction"] == "holm" and fam["contrasts"] == ["kd - none", "rkd - none"]
    kd = fam["results"]["kd - none"]
    assert kd["p_holm"] == pytest.approx(min(1.0, 2 * kd["p"])) or kd["p_holm"] >= kd["p"]
    assert kd["holm"] == "above 0" and fam["results"]["rkd - none"]["holm"] == "not shown"


def test_crds_negatives_at_lite_come_from_the_config_and_travel_through_every_weight_it_tries(tmp_path, monkeypatch):
    assert config.sizes("method_comparison_converged", "lite")["tuning"]["crd_negatives"] == 2048
    tuning = dict(config._CONVERGED_TUNING, multipliers=[1.0, 3.0], max_extend=1, crd_negatives=48)
    grid = _converged(monkeypatch, tmp_path, methods=["crd"], seeds=[0], tuning=tuning)
    tried = []
    while tune := [m for role, m, s in grid.plan()[0] if role == "tune"]:
        for m in tune:
            tried.append(m)
            _fake_run(grid, m, 90, 50.0 + m.lam_kd)  # bigger is always better: the search extends past its edge
    assert len(tried) == 3 and {m.negatives for m in tried} == {48}, "an extension keeps the grid's negatives"
    finals = [m for role, m, s in grid.plan()[0] if role == "final"]
    assert finals and {m.negatives for m in finals} == {48}
