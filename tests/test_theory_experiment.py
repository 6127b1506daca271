"""Notebook 02's experiment in the library (fkdlib.theory.experiment): its design, its record, its CLI entry, and
the arrays behind its figures (fkdlib.viz.theory). Smoke-sized: seconds each."""
import json
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from fkdlib.experiments import EXPERIMENTS, config  # noqa: E402
from fkdlib.experiments.report import demo_summary  # noqa: E402
from fkdlib.records import load_result, to_json  # noqa: E402
from fkdlib.theory import experiment, simulation  # noqa: E402
from fkdlib.viz import theory as figures  # noqa: E402


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run through the catalog entry, as ``python -m fkdlib experiment theory`` calls it, and its record."""
    root = tmp_path_factory.mktemp("theory")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FKD_RESULTS_DIR", str(root / "results"))
        result = EXPERIMENTS["theory"]("smoke", data_root=None, device=torch.device("cpu"), progress=False,
                                       precision="fp32", workers=2)
    return root, result, load_result(root / "results" / "theory" / "smoke.json")


def test_the_catalog_runs_it_and_the_record_holds_what_it_returned_with_provenance(smoke):
    root, result, record = smoke
    assert json.loads(to_json(result)) == record["result"]   # a missing number (NaN) is null in the file
    cfg = record["provenance"]["config"]
    assert {"git_commit", "time_utc", "torch_version"} <= record["provenance"].keys()
    assert cfg["scale"] == "smoke" and cfg["lam_kd"] == experiment.LAM_KD and cfg["combine"] == "concat"
    assert cfg["net"] == experiment.NET and cfg["spec"]["k"] == 10
    assert {k: cfg[k] for k in config.sizes("theory", "smoke")} == config.sizes("theory", "smoke")
    assert set(result) == {"lottery", "fkd_vs_E", "lambda_sweep", "schedule"}


def test_every_run_of_the_design_is_there_with_the_theorems_value(smoke):
    _, result, _ = smoke
    sizes = config.sizes("theory", "smoke")
    fkd = result["fkd_vs_E"]
    assert list(fkd) == ["plain", "self"] + [f"E={E}" for E in sizes["E"]]
    for name, v in fkd.items():
        assert v["theorem"] == 1 - 2 ** -(v["E"] + 1) and len(v["acc"]) == sizes["n_students"]
        assert v["mean"] == pytest.approx(np.mean(v["acc"]))
    assert fkd["plain"]["E"] == fkd["self"]["E"] == 0 and fkd["E=2"]["E"] == 2
    lot = result["lottery"]
    assert len(lot["train_accuracy"]) == sizes["n_nets"] and np.shape(lot["learned_views"]) == (sizes["n_nets"], 10, 2)


def test_the_lambda_sweep_covers_every_kernel_at_every_lambda_and_reuses_phase_2(smoke):
    _, result, _ = smoke
    sweep = {k: v for k, v in result["lambda_sweep"].items() if k != "E"}
    lams = sorted(set(config.sizes("theory", "smoke")["ablation_lams"]) | {experiment.LAM_KD})
    assert {(v["kind"], v["lam"]) for v in sweep.values()} == {(k, lam) for k in ("normalised", "raw", "self")
                                                              for lam in lams}
    E = result["lambda_sweep"]["E"]
    for kind, run in [("normalised", f"E={E}"), ("self", "self")]:    # phase 2's runs are points of the sweep
        assert sweep[f"{kind} lam={experiment.LAM_KD:g}"]["acc"] == result["fkd_vs_E"][run]["acc"]


def test_the_demo_summary_reads_the_record(smoke):
    root, result, _ = smoke
    text = demo_summary(root, "smoke")
    assert f"E=1 {100 * result['fkd_vs_E']['E=1']['mean']:.1f}%" in text and "the theorem's ideal: 75.0%" in text


def test_teachers_are_the_next_nets_never_the_student():
    for n in (3, 9):
        for E in range(1, n):
            for j in range(n):
                t = experiment.teachers_of(j, E, n)
                assert len(set(t)) == E and j not in t and t[0] == (j + 1) % n


def test_phase_2_students_continue_their_own_phase_1_net():
    sim = experiment.Simulation("smoke", progress=False)
    sim.run_lottery()
    phase_1 = sim.nets.W.clone()
    sim.run_fkd()
    S = sim.S
    assert [len(t) for t in sim.runs["self"]] == [1] * S and sim.runs["self"] == [[j] for j in range(S)]
    # a plain student is net j trained fkd_steps more with cross-entropy alone: redo that by hand
    shape = {k: v for k, v in sim.net.items() if k in ("q", "thr", "scale")}
    alone = simulation.Nets(phase_1[:S].clone(), k=10, **shape)
    simulation.train(alone, sim.task.train, sim.cfg["fkd_steps"], sim.lr, progress=False)
    assert torch.allclose(sim.students.W[:S], alone.W, atol=1e-6)
    assert not torch.allclose(sim.students.W[2 * S:3 * S], alone.W, atol=1e-3)    # E=1 students felt their teacher


def test_same_seed_same_numbers_other_seed_other_numbers():
    def fkd(seed):
        sim = experiment.Simulation("smoke", seed=seed, progress=False)
        sim.run_lottery()
        return sim.run_fkd()
    a, b, c = fkd(0), fkd(0), fkd(1)
    assert json.dumps(a) == json.dumps(b)
    assert a["E=1"]["acc"] != c["E=1"]["acc"]


def test_the_explorer_reruns_phase_2_and_the_rules_agree_for_one_teacher():
    sim = experiment.Simulation("smoke", progress=False)
    sim.run_lottery()
    fkd = sim.run_fkd()
    again = sim.probe(2, experiment.LAM_KD, "concat")
    assert again["acc"] == fkd["E=2"]["acc"] and again["plain"] is fkd["plain"] and again["theorem"] == 0.875
    assert sim.probe(1, experiment.LAM_KD, "mean")["acc"] == fkd["E=1"]["acc"]   # one teacher: mean = concat
    assert sim.probe(2, experiment.LAM_KD, "mean")["acc"] != fkd["E=2"]["acc"]
    assert sim.probe(2, 0.0)["acc"] == fkd["plain"]["acc"]                       # lambda 0: plain training
    fig = figures.explorer(again)                                                 # the arrays it draws
    bars = [p.get_height() for p in fig.axes[0].patches]
    assert bars == pytest.approx([np.mean(fkd["plain"]["acc"]), np.mean(again["acc"])])


def test_bad_knobs_are_refused():
    with pytest.raises(ValueError, match="combine"):
        experiment.Simulation("smoke", combine="median")
    with pytest.raises(ValueError, match="kd_points"):
        experiment.Simulation("smoke", kd_points="test")
    with pytest.raises(TypeError):
        experiment.run("smoke", save=False, no_such_knob=1)


def test_view_shares():
    learned = torch.zeros(2, 4, 2, dtype=torch.bool)
    learned[0, 0, 0] = learned[0, 1, 1] = learned[1, 0, 0] = True    # three one-view cells, two of them view 1
    learned[1, 1] = True                                             # one cell with both views
    s = experiment.view_shares(learned)
    assert (s["one"], s["both"], s["none"]) == (3 / 8, 1 / 8, 4 / 8) and s["view_1_of_one"] == pytest.approx(2 / 3)
    assert math.isnan(experiment.view_shares(torch.zeros(1, 2, 2, dtype=torch.bool))["view_1_of_one"])


def test_the_figures_draw_the_numbers_they_are_given(smoke):
    _, result, _ = smoke
    fkd, E = result["fkd_vs_E"], config.sizes("theory", "smoke")["E"]
    fig = figures.fkd_vs_E(fkd, E, 2)
    students = [line for line in fig.axes[0].lines if line.get_marker() == "o"][0]
    assert list(students.get_ydata()) == pytest.approx([fkd[f"E={e}"]["mean"] for e in E])
    learned = np.array(result["lottery"]["learned_views"])
    grid = figures.lottery_grid(learned).axes[0].images[0].get_array()
    assert (np.asarray(grid) == learned[..., 0] + 2 * learned[..., 1]).all()
    sched = figures.schedule(result["schedule"], fkd["plain"]["mean"], result["schedule"]["E"])
    heights = [p.get_height() for p in sched.axes[0].patches]
    assert heights == pytest.approx([v["single_view"][0] for k, v in result["schedule"].items() if k != "E"])


def test_the_cli_runs_the_theory_experiment(tmp_path, monkeypatch, capsys):
    from fkdlib.cli import main
    monkeypatch.setenv("FKD_RESULTS_DIR", str(tmp_path))
    assert main(["experiment", "theory", "--scale", "smoke", "--quiet"]) == 0
    assert (tmp_path / "theory" / "smoke.json").is_file()
    assert '"fkd_vs_E"' in capsys.readouterr().out


def test_the_explorer_widget_reruns_the_probe_with_each_controls_value(smoke):
    _, result, _ = smoke
    fkd, calls = result["fkd_vs_E"], []

    def probe(E, lam_kd, combine):
        calls.append((E, lam_kd, combine))
        return dict(fkd[f"E={E}"], E=E, lam_kd=lam_kd, combine=combine, plain=fkd["plain"], seconds=0.0)

    box = figures.explorer_widget(probe, E=2, E_max=2, lam_kd=300.0, combine="concat")
    E, lam, combine = box.children[:3]
    assert (E.min, E.max, E.value, lam.value, combine.options) == (1, 2, 2, 300.0, ("concat", "mean"))
    E.value = 1
    combine.value = "mean"
    lam.value = 1000.0
    assert calls == [(2, 300.0, "concat"), (1, 300.0, "concat"), (1, 300.0, "mean"), (1, 1000.0, "mean")]
