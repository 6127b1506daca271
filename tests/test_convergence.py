"""The doubling test that fixes a grid's training length, and the clean training accuracy it reads."""
import pytest
import torch

from fkdlib.data import ImageData, synthetic_images
from fkdlib.engine.train import train
from fkdlib.experiments import config
from fkdlib.experiments.convergence import budget_recipe, doubling_test


def _rec(val, test=None, clean=None):
    final = {"val_acc": val / 100, "test_acc": (test if test is not None else val) / 100}
    if clean is not None:
        final["train_clean_acc"] = clean / 100
    return {"result": {"final": final, "history": [final]}}


def test_doubling_test_averages_each_seeds_own_change_and_judges_its_size():
    short = {0: _rec(50.0, 48.0, 60.0), 1: _rec(52.0, 50.0, 62.0)}
    long = {0: _rec(51.5, 49.0, 70.0), 1: _rec(52.1, 49.0, 71.0)}
    t = doubling_test(short, long, tolerance=1.0)
    assert t["delta_val_acc"] == pytest.approx({0: 1.5, 1: 0.1})
    assert t["mean_delta_val_acc"] == pytest.approx(0.8)
    assert t["mean_delta_test_acc"] == pytest.approx(0.0)
    assert t["mean_delta_train_clean_acc"] == pytest.approx(9.5)
    assert t["converged"] is True
    # a mean change of exactly the tolerance, or a fall of more than it, is not converged
    assert doubling_test({0: _rec(50.0)}, {0: _rec(51.0)}, 1.0)["converged"] is False
    assert doubling_test({0: _rec(50.0)}, {0: _rec(48.5)}, 1.0)["converged"] is False
    # seeds compare with their own shorter run: a seed present at one budget only is left out
    t = doubling_test({0: _rec(50.0), 1: _rec(40.0)}, {0: _rec(50.5)}, 1.0)
    assert t["seeds"] == [0] and t["converged"] is True
    with pytest.raises(ValueError, match="same seed"):
        doubling_test({0: _rec(50.0)}, {1: _rec(50.0)})


def test_budgets_keep_the_schedules_shape():
    proto = config.sizes("method_comparison", "lite")
    for epochs, decays in [(100, (60, 85)), (200, (120, 170)), (400, (240, 340))]:
        r = budget_recipe(proto, epochs, [0.6, 0.85], 10)
        assert (r.epochs, r.milestones, r.eval_every) == (epochs, decays, 10)
        assert (r.lr, r.batch_size) == (proto["student_recipe"]["lr"], proto["student_recipe"]["batch_size"])


def test_clean_training_accuracy_is_scored_without_augmentation_at_the_scored_epochs(tmp_path):
    X, y = synthetic_images(48, num_classes=3, image_size=16, seed=0)
    data = ImageData(X, y, ["a", "b", "c"], "synthetic", "train")
    recipe = config.recipe("smoke", epochs=5, batch_size=16, milestones=(4,), train_subset=0, eval_last=1,
                           eval_every=2)
    rec = train("resnet8", data, data, recipe, tmp_path, seed=0, progress=False)
    hist = rec["result"]["history"]
    assert [h["epoch"] for h in hist if "test_acc" in h] == [2, 4, 5]
    assert all(("train_clean_acc" in h) == ("test_acc" in h) for h in hist)
    # the training images are the test images here: in evaluation mode both are the same number
    assert all(h["train_clean_acc"] == h["test_acc"] for h in hist if "test_acc" in h)


def test_a_method_whose_last_doubling_fails_doubles_again_and_the_regime_is_the_latest_pass(tmp_path):
    from fkdlib.experiments.convergence import ConvergenceGrid
    from fkdlib.records import write_record

    methods = {"none": {"name": "none"}, "fkd": {"name": "fkd", "lam_kd": 30.0, "lam_fr": 0.0}}
    grid = ConvergenceGrid("smoke", tmp_path, dict(epochs=[2, 4], max_epochs=16, seeds=[0, 1], methods=methods))
    val = {"none": {2: 50.0, 4: 50.5, 8: 50.6}, "fkd": {2: 50.0, 4: 53.0, 8: 55.0, 16: 55.5}}

    def finish(label, epochs):
        for lab, method, e, s in grid.runs():
            if lab == label and e == epochs:
                write_record(grid.run_dir(method, e, s) / "result.json",
                             {"status": "done", "final": {"val_acc": val[label][e] / 100 + s * 1e-3,
                                                          "test_acc": 0.5}, "history": [], "wall_time_s": 1.0},
                             {"config": {"data_label": "toy"}})

    assert sorted({(lab, e) for lab, _, e, _ in grid.runs()}) == [("fkd", 2), ("fkd", 4), ("none", 2), ("none", 4)]
    for label in methods:
        for e in (2, 4):
            finish(label, e)
    # none passed 2 -> 4 (+0.5): it stops; fkd failed (+3): it doubles to 8, then 16 after 4 -> 8 fails (+2)
    assert grid.budgets("none") == [2, 4] and grid.budgets("fkd") == [2, 4, 8]
    finish("fkd", 8)
    assert grid.budgets("fkd") == [2, 4, 8, 16] and grid.runs()[0][2] == 16
    finish("fkd", 16)
    summary = grid.summarize()
    assert summary["converged_from"] == {"none": 2, "fkd": 8} and summary["regime_epochs"] == 8
    from fkdlib.viz.regime import doubling_test  # the figure writes each doubling's change where the summary has it
    fig = doubling_test(summary)
    notes = sorted(t.get_text() for t in fig.axes[0].texts)
    assert notes == sorted(f"{t['mean_delta_val_acc']:+.2f}" for m in methods for t in summary["doubling"][m].values())
    assert len(notes) == 4 and all(line.get_xdata()[0] == 8 for line in fig.axes[0].lines if line.get_linestyle() == "--")
    assert grid.budgets("fkd") == [2, 4, 8, 16]  # max_epochs caps the doubling
