"""Model files that cannot run code: a crafted file is refused (CLI and Python) unless trusted, RepDistiller's
layout and every file we write load with ``weights_only=True``, a broken file is named in one line."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from fkdlib.cli import main
from fkdlib.data import ImageData, synthetic_images
from fkdlib.models import create_model
from fkdlib.experiments.config import recipe as get_recipe
from fkdlib.models.checkpoints import CorruptCheckpointError, UnsafeCheckpointError, plain, resave, safe_load
from fkdlib.models.teachers import load_teacher
from fkdlib.engine.train import train
from fkdlib.records import CHECKPOINT, MODEL


class _TouchOnLoad:
    """Unpickling this calls ``pathlib.Path(marker).touch()``: a stand-in for any code a stranger's file runs."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _crafted(tmp_path, name="teacher.pt"):
    """A resnet8 teacher file (10 classes, like the synthetic data) that also creates ``marker`` when unpickled."""
    torch.manual_seed(0)
    marker = tmp_path / "MARKER"
    path = tmp_path / name
    torch.save({"model": create_model("resnet8", num_classes=10).state_dict(), "arch": "resnet8",
                "payload": _TouchOnLoad(marker)}, path)
    return path, marker


def _bare_load(path):
    """torch's own safe load, without fkdlib's allowlist: what every file we write must pass."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _cli(*argv):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "fkdlib", *argv], capture_output=True, text=True, env=env)


def test_the_cli_refuses_a_file_that_would_run_code_and_runs_nothing(tmp_path):
    path, marker = _crafted(tmp_path)
    out = tmp_path / "student"
    proc = _cli("distill", "--model", "resnet8", "--teacher", str(path), "--dataset", "synthetic", "--preset", "smoke",
                "--out", str(out), "--quiet")
    err = proc.stderr.strip()
    assert proc.returncode != 0 and "\n" not in err
    assert str(path) in err and "could run code" in err and "--trust-checkpoint" in err
    assert not marker.exists() and not out.exists()


def test_load_teacher_refuses_it_and_loads_it_only_when_trusted(tmp_path):
    path, marker = _crafted(tmp_path)
    for load in (load_teacher, safe_load):
        with pytest.raises(UnsafeCheckpointError, match=r"teacher\.pt could run code.*pathlib.*trust=True") as err:
            load(path)
        assert "\n" not in str(err.value)
    assert not marker.exists()
    t = load_teacher(path, trust=True)
    assert marker.exists() and t.arch == "resnet8" and len(t.classes) == 10


def test_the_cli_opt_in_loads_a_trusted_file(tmp_path, capsys):
    path, marker = _crafted(tmp_path)
    argv = ["evaluate", "--checkpoint", str(path), "--dataset", "synthetic", "--device", "cpu"]
    assert main(argv) == 1 and not marker.exists()
    assert main([*argv, "--trust-checkpoint"]) == 0 and marker.exists()
    assert '"accuracy"' in capsys.readouterr().out


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy-format"])
def test_repdistiller_checkpoints_with_optimizer_state_and_numpy_scalars_load_safely(tmp_path, zipped):
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=100)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    model(torch.randn(4, 3, 32, 32)).logsumexp(1).mean().backward()
    opt.step()  # momentum buffers in the optimizer state
    folder = tmp_path / "resnet8_cifar100_lr_0.05_decay_0.0005_trial_0"  # RepDistiller's run-folder naming
    folder.mkdir()
    path = folder / "resnet8_best.pth"
    # RepDistiller's train_teacher.py: {"epoch", "model", "best_acc"/"accuracy", "optimizer"}; forks keep numpy values
    torch.save({"epoch": np.int64(240), "model": model.state_dict(), "accuracy": np.float64(73.31),
                "best_acc": np.float32(73.5), "optimizer": opt.state_dict(), "improved": np.bool_(True)}, path,
               _use_new_zipfile_serialization=zipped)
    if not zipped:  # as numpy 1.x wrote them: numpy.core.multiarray.scalar, not numpy._core
        raw = path.read_bytes()
        assert b"numpy._core.multiarray\nscalar" in raw
        path.write_bytes(raw.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar"))
    record = safe_load(path)
    assert record["accuracy"] == pytest.approx(73.31) and record["epoch"] == 240
    assert torch.equal(record["optimizer"]["state"][0]["momentum_buffer"],
                       opt.state_dict()["state"][0]["momentum_buffer"])
    t = load_teacher(path)
    assert t.arch == "resnet8" and t.dataset == "cifar100" and len(t.classes) == 100
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(t.model(x), model.eval()(x))


def _tiny_data():
    X, y = synthetic_images(8, num_classes=3, image_size=16, seed=0)
    d = ImageData(X, y, ["a", "b", "c"], "synthetic", "train")
    return d.subset(torch.arange(0, 16)), d.subset(torch.arange(16, 24), split="test")


def test_every_file_we_write_loads_with_weights_only(tmp_path):
    train_d, test_d = _tiny_data()
    recipe = get_recipe("smoke", epochs=1, batch_size=8, train_subset=0, probe_size=8)
    train("resnet8", train_d, test_d, recipe, tmp_path / "teacher", seed=0, progress=False, precision="fp32")
    teacher = load_teacher(tmp_path / "teacher" / MODEL)
    # a distilled student in fp16 (its checkpoint holds the grad scaler's state, as a killed run leaves it)
    from fkdlib.distill.methods import Method
    train("resnet8", train_d, test_d, recipe, tmp_path / "student", method=Method("fkd"), teachers=[teacher], seed=1,
          progress=False, precision="fp16")
    for path in (tmp_path / "teacher" / MODEL, tmp_path / "student" / MODEL, tmp_path / "student" / CHECKPOINT,
                 tmp_path / "teacher" / CHECKPOINT):
        record = _bare_load(path)
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
        assert "model" in record
    ckpt = _bare_load(tmp_path / "student" / CHECKPOINT)
    assert ckpt["scaler"] and {"optimizer", "scheduler", "torch_rng", "history"} <= set(ckpt)
    assert type(_bare_load(tmp_path / "teacher" / MODEL)["provenance"]["torch_version"]) is str


def test_an_earlier_version_file_loads_through_the_allowlist_and_resave_makes_it_plain(tmp_path, capsys):
    torch.manual_seed(0)
    state = create_model("resnet8", num_classes=10).state_dict()
    path = tmp_path / "model.pt"
    # fkdlib 0.1 wrote torch.__version__ (a TorchVersion, not a str) into the provenance
    torch.save({"model": state, "arch": "resnet8", "provenance": {"torch_version": torch.__version__}}, path)
    with pytest.raises(Exception, match="TorchVersion"):
        _bare_load(path)
    assert load_teacher(path).arch == "resnet8"
    assert main(["resave", str(path)]) == 0 and "re-saved" in capsys.readouterr().out
    after = _bare_load(path)["model"]
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert "already plain" in resave(path)


def test_resave_refuses_a_file_that_would_run_code_unless_trusted(tmp_path, capsys):
    path, marker = _crafted(tmp_path)
    assert main(["resave", str(path)]) == 1 and not marker.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err
    assert main(["resave", str(path), "--trust-checkpoint"]) == 0 and marker.exists()
    marker.unlink()
    assert _bare_load(path)["payload"] is None and not marker.exists()  # the call's result was kept, not the call


@pytest.mark.parametrize("damage", ["truncated", "empty", "not-torch"])
def test_a_broken_file_is_named_in_one_line(tmp_path, damage, capsys):
    torch.manual_seed(0)
    good = tmp_path / "good.pt"
    torch.save({"model": create_model("resnet8", num_classes=10).state_dict()}, good)
    path = tmp_path / "teacher.pt"
    path.write_bytes({"truncated": good.read_bytes()[:5000], "empty": b"", "not-torch": b"<html>404</html>"}[damage])
    with pytest.raises(CorruptCheckpointError, match=r"teacher\.pt is truncated or corrupted") as err:
        load_teacher(path)
    assert "\n" not in str(err.value)
    assert main(["evaluate", "--checkpoint", str(path), "--dataset", "synthetic", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "truncated or corrupted" in err


def test_plain_converts_number_and_string_subclasses_and_refuses_objects():
    state = create_model("resnet8", num_classes=3).state_dict()
    assert plain(state) is state  # unchanged, with its _metadata
    out = plain({"v": torch.__version__, "acc": np.float32(0.5), "n": np.int64(3), "m": (1, 2), "ok": np.bool_(True)})
    assert [type(v) for v in out.values()] == [str, float, int, tuple, bool]
    with pytest.raises(TypeError, match=r"model\.pt\['provenance'\]\['where'\] is a pathlib\.\w*Path"):
        plain({"provenance": {"where": pathlib.Path(".")}}, "model.pt")
