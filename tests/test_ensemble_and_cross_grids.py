"""The ensemble-size and cross-dataset grids (issue 14): what they train, what they choose on, what they pair."""
import json

import pytest
import torch

from fkdlib import experiments
from fkdlib.experiments import tuning
from fkdlib.experiments import config
from fkdlib.experiments import cross as cross_dataset
from fkdlib.experiments.splits import cross_data
from fkdlib.distill.kernels import feature_kernel
from fkdlib.distill.losses import fkd_loss
from fkdlib.distill.methods import Method, loss_terms


def test_concat_targets_the_normalised_kernel_of_the_joined_features_not_the_mean_of_kernels():
    g = torch.Generator().manual_seed(0)
    h1, h2 = torch.randn(6, 4, generator=g, dtype=torch.float64), 5 * torch.randn(6, 3, generator=g, dtype=torch.float64)
    h_s = torch.randn(6, 5, generator=g, dtype=torch.float64)
    joined = torch.cat([h1, h2], 1)
    rho = joined @ joined.T / (joined.norm(dim=1)[:, None] * joined.norm(dim=1)[None, :])  # by hand, float64
    rho_s = feature_kernel(h_s)
    off = ~torch.eye(6, dtype=torch.bool)
    want = ((rho_s - rho)[off] ** 2).mean()
    (target,) = Method("fkd", ensemble="concat").kernel_target([h1, h2])
    assert torch.allclose(fkd_loss(h_s, [target]), want)
    mean = fkd_loss(h_s, Method("fkd").kernel_target([h1, h2]))
    assert not torch.allclose(mean, want)  # the second teacher's larger features dominate the joined kernel
    feats = [[h_s]], [[h1], [h2]]
    terms = loss_terms(Method("fkd-nofr", ensemble="concat", lam_kd=1.0), feats[0][0], torch.zeros(6, 2), None,
                       [(f, None) for f in feats[1]])
    assert torch.allclose(terms["fkd"], want)


def test_concat_is_a_rule_of_fkd_only_and_mean_records_read_as_before():
    with pytest.raises(ValueError, match="FKD"):
        Method("kd", ensemble="concat")
    with pytest.raises(ValueError, match="mean"):
        Method("fkd", ensemble="max")
    assert "ensemble" not in Method("fkd").to_dict() and Method("fkd", ensemble="concat").to_dict()["ensemble"] == "concat"
    assert tuning.run_name(Method("fkd", lam_kd=30, lam_fr=0.001, fr_squared=False, ensemble="concat")) == \
        "fkd_w30_fr0.001norm_concat"


def _smoke_grid(tmp_path_factory, experiment):
    """Run ``experiment`` at smoke size into its own results folder; yield its summary."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FKD_RESULTS_DIR", str(tmp_path_factory.mktemp("results")))
    yield experiment("smoke", progress=False, precision="fp32")
    mp.undo()


@pytest.fixture(scope="module")
def ensemble_grid(tmp_path_factory):
    yield from _smoke_grid(tmp_path_factory, experiments.ensemble_size)


def test_ensemble_teachers_are_trained_like_the_students_on_their_data_with_seeds_of_their_own(ensemble_grid):
    out = experiments.experiment_dir("ensemble_size", "smoke")
    cfg = config.sizes("ensemble_size", "smoke")
    teacher = json.loads((out / "teachers" / "none_s100" / "result.json").read_text())["provenance"]["config"]
    plain = json.loads((out / "runs" / "none_s0" / "result.json").read_text())["provenance"]["config"]
    assert teacher["recipe"] == plain["recipe"] and teacher["num_train"] == plain["num_train"]
    assert teacher["arch"] == plain["arch"] == config.sizes("method_comparison", "smoke")["student"]
    assert not set(cfg["teacher_seeds"]) & set(cfg["seeds"])
    fkd2 = json.loads((out / "runs" / "fkd_w30_fr0.001norm_E2_s1" / "result.json").read_text())["provenance"]
    assert len(fkd2["config"]["teachers"]) == 2 and fkd2["seed"] == 1


def test_the_ensemble_summary_pairs_every_cell_over_seeds(ensemble_grid):
    s = ensemble_grid
    assert set(s["rows"]) == {"none", "kd E=1", "fkd E=1", "kd E=2", "fkd E=2", "fkd-concat E=2"}
    assert all(r["n"] == 2 for r in s["rows"].values()) and len(s["teacher_ensemble"]) == 2
    d = s["paired"]["fkd-concat E=2 - fkd E=2"]
    a, b = s["rows"]["fkd-concat E=2"]["test_acc"], s["rows"]["fkd E=2"]["test_acc"]
    assert d["diffs"] == pytest.approx([a[k] - b[k] for k in sorted(a)])
    assert {"fkd E=2 - kd E=2", "fkd E=2 - fkd E=1", "kd E=1 - none"} <= set(s["paired"])


def test_a_teacher_cache_changes_no_number(ensemble_grid, tmp_path, monkeypatch):
    """Two students of one seed through one cache: the second reads its teachers' outputs, bit for bit the same."""
    from fkdlib.experiments.splits import comparison_data
    from fkdlib.experiments.config import recipe as get_recipe
    from fkdlib.models.teachers import load_teacher
    from fkdlib.engine.teacher_cache import TeacherCache
    from fkdlib.engine.train import train

    proto = config.sizes("method_comparison", "smoke")
    data = comparison_data(proto)
    recipe = get_recipe(proto["preset"], **proto["student_recipe"])
    out = experiments.experiment_dir("ensemble_size", "smoke")
    teachers = [load_teacher(out / "teachers" / f"none_s{s}" / "model.pt") for s in (100, 101)]
    cache = TeacherCache()
    kw = dict(method=Method("fkd", ensemble="concat"), teachers=teachers, seed=3, progress=False, precision="fp32")
    plain = train(proto["student"], data["train"], data["test"], recipe, tmp_path / "a", **kw)
    first = train(proto["student"], data["train"], data["test"], recipe, tmp_path / "b", teacher_cache=cache, **kw)
    again = train(proto["student"], data["train"], data["test"], recipe, tmp_path / "c", teacher_cache=cache, **kw)
    assert cache.hits > 0 and cache.hits == cache.misses  # the third run read every batch the second computed
    for rec in (first, again):
        assert rec["result"]["history"] == [{**h, "wall_time_s": r["wall_time_s"]} for h, r in
                                             zip(plain["result"]["history"], rec["result"]["history"])]


@pytest.fixture(scope="module")
def cross_grid(tmp_path_factory):
    yield from _smoke_grid(tmp_path_factory, experiments.cross_dataset)


def test_cross_data_splits_label_spaces_and_keeps_validation_out_of_the_unlabelled_pool():
    cfg = config.sizes("cross_dataset", "smoke")
    d = cross_data(cfg)
    assert d["teacher_train"].classes != d["train"].classes and len(d["val"]) == cfg["val_size"]
    assert (d["unlabelled"].y == -1).all() and len(d["unlabelled"]) == cfg["unlabelled_size"]
    val = {bytes(x.numpy().tobytes()) for x in d["val"].X}
    assert not val & {bytes(x.numpy().tobytes()) for x in d["unlabelled"].X}
    assert not val & {bytes(x.numpy().tobytes()) for x in d["train"].X}


def test_cross_choices_weight_first_then_the_learning_rate_at_that_weight(cross_grid):
    s = cross_grid
    assert list(s["tuning"]) == ["none", "rkd weight", "rkd", "sp weight", "sp", "fkd weight", "fkd"]
    for m in ("rkd", "sp", "fkd"):
        weight = s["tuning"][f"{m} weight"]
        lrs = s["tuning"][m]["rounds"][0]
        chosen_w = next(t for t in weight["rounds"][0] if t["run"] == weight["run"])["method"]
        assert all(t["method"]["lam_kd"] == chosen_w["lam_kd"] for t in lrs) and len({t["method"]["lr"] for t in lrs}) > 1
        assert s["methods"][m]["method"]["lam_kd"] == chosen_w["lam_kd"]
    assert s["methods"]["fkd-unlabelled"]["method"] == dict(s["methods"]["fkd"]["method"], unlabelled=True)
    assert {"fkd - none", "fkd-unlabelled - fkd"} <= set(s["paired"])


def test_the_unlabelled_variant_gives_the_kernel_term_its_own_batch(cross_grid):
    out = experiments.experiment_dir("cross_dataset", "smoke")
    grid = cross_dataset.CrossGrid("smoke", out)
    chosen, _, _ = grid.choices()
    rec = grid.record(chosen["fkd-unlabelled"], 0)["provenance"]["config"]
    plain_fkd = grid.record(chosen["fkd"], 0)["provenance"]["config"]
    assert rec["kd_data"] is not None and plain_fkd["kd_data"] is None
    assert rec["recipe"]["kd_batch_size"] == config.sizes("cross_dataset", "smoke")["kd_batch_size"]
    assert rec["classes"] == plain_fkd["classes"]
