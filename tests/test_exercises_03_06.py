"""Each exercise of notebooks 03-06 that changes something, done once at smoke size: the notebook still runs to its
end, and its claims are reported, not asserted, away from the defaults (fkdlib.claims)."""
import pytest

from exercises import run_notebook, snippets


@pytest.mark.parametrize("params", [dict(LAM_KD=1e4, LAM_FR=0.0), dict(LAM_KD=0.0, LAM_FR=0.1), dict(EPOCHS=3)],
                         ids=["exercise-1-huge-lambda", "exercise-3-fr-alone", "exercise-4-more-epochs"])
def test_notebook_03_exercises_run_to_the_end(params, monkeypatch, tmp_path):
    ns, printed = run_notebook("03_fkd_in_practice.ipynb", monkeypatch, tmp_path, **params)
    history = ns["mine"]["result"]["history"]
    assert len(history) == ns["EPOCHS"] and ns["method"].lam_kd == ns["LAM_KD"]
    if ns["LAM_KD"] == 0:
        assert "train_fkd" in history[0] and history[0]["train_fkd"] == 0.0   # no kernel term: its weight is 0
    assert "asserted only at the defaults" in printed          # away from the defaults the claims are reported


@pytest.mark.parametrize("name,wanted", [("04_method_comparison.ipynb", "choose"),
                                         ("05_ensemble_size.ipynb", "ensemble_size(SCALE"),
                                         ("06_cross_dataset.ipynb", "cross_dataset(SCALE")])
def test_the_code_an_exercise_gives_runs_after_the_notebook(name, wanted, monkeypatch, tmp_path):
    blocks = snippets(name)
    assert any(wanted in b for b in blocks), f"{name}'s exercises lost their code"
    ns, _ = run_notebook(name, monkeypatch, tmp_path)
    for block in blocks:
        exec(compile(block, f"{name} exercise", "exec"), ns)
    if "mine" in ns:   # an override grid: its own folder, the notebook's summary untouched
        assert ns["mine"]["overrides"] and ns["mine"]["paired"]
        assert ns["summary"].get("overrides") is None
