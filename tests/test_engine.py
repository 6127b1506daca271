"""The engine's fast path computes what the plain path computes: same losses, same NaN stop, exact resume.

Tolerances: a folded float32 teacher changes the loss terms by < 1e-5 relative (float32 rounding); running
the networks in bfloat16 (8-bit mantissa) changes them by < 5% relative. The augmentation is the loader's,
whose distribution is tested against torchvision's in test_loader.py.
"""
import copy

import pytest
import torch

from fkdlib.engine import amp
from fkdlib.data import ImageData, synthetic_images
from fkdlib.data.loader import DeviceLoader
from fkdlib.distill.methods import Method
from fkdlib.models import create_model
from fkdlib.experiments.config import recipe as get_recipe
from fkdlib.models.teachers import Teacher
from fkdlib.engine.step import EpochStats, TrainStep
from fkdlib.engine.train import train
from fkdlib.records import MODEL


def _teacher(arch="resnet20", classes=10, seed=0):
    torch.manual_seed(seed)
    m = create_model(arch, num_classes=classes)
    m.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a trained teacher has
        m(torch.randn(32, 3, 32, 32) * 2 + 0.5)
    return Teacher(m, arch, "synthetic", [str(i) for i in range(classes)])


def _batch(n=32, classes=10, seed=0):
    X, y = synthetic_images(n, num_classes=classes, image_size=32, seed=seed)
    loader = DeviceLoader(X, y, n, train=True, mean=(0.5,) * 3, std=(0.25,) * 3, seed=seed)
    return next(iter(loader))


def _terms(method, teachers, precision, fold, xb, yb, student):
    s = copy.deepcopy(student).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(s.parameters(), lr=0.0)
    step = TrainStep(s, teachers, method, opt, torch.device("cpu"), precision, fold_teachers=fold)
    loss, terms, logits = step(xb, yb)
    return {"loss": loss, **terms}, logits


@pytest.mark.parametrize("method", ["fkd", "kd", "rkd", "sp"])
def test_folded_teachers_give_the_plain_paths_losses(method):
    teachers = [_teacher(seed=0), _teacher("resnet8", seed=1)]
    xb, yb = _batch()
    torch.manual_seed(3)
    student = create_model("resnet8", num_classes=10)
    plain, logits_p = _terms(Method(method), teachers, "fp32", False, xb, yb, student)
    fast, logits_f = _terms(Method(method), teachers, "fp32", True, xb, yb, student)
    assert plain.keys() == fast.keys()
    for k in plain:
        torch.testing.assert_close(fast[k], plain[k], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(logits_f, logits_p)


def test_bf16_networks_give_the_fp32_losses_within_five_percent():
    teachers = [_teacher()]
    xb, yb = _batch(64)
    torch.manual_seed(3)
    student = create_model("resnet8", num_classes=10)
    ref, _ = _terms(Method("fkd"), teachers, "fp32", False, xb, yb, student)
    fast, logits = _terms(Method("fkd"), teachers, "bf16", True, xb, yb, student)
    assert logits.dtype == torch.float32 and all(v.dtype == torch.float32 for v in fast.values())
    for k in ref:
        assert abs(float(fast[k]) - float(ref[k])) <= 0.05 * abs(float(ref[k])), k


def test_a_step_trains_the_student_and_never_the_teacher():
    t = _teacher()
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    xb, yb = _batch()
    torch.manual_seed(0)
    s = create_model("resnet8", num_classes=10).to(memory_format=torch.channels_last)
    w0 = s.fc.weight.detach().clone()
    step = TrainStep(s, [t], Method("fkd"), torch.optim.SGD(s.parameters(), lr=0.1), torch.device("cpu"), "bf16")
    step(xb, yb)
    assert not torch.equal(w0, s.fc.weight)
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())


def test_epoch_stats_sum_on_the_device_and_find_the_first_bad_step():
    stats = EpochStats(torch.device("cpu"))
    y = torch.tensor([0, 1])
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    for step, loss in enumerate([1.0, 3.0, float("nan"), float("inf")]):
        stats.add(step, y, torch.tensor(loss), {"ce": torch.tensor(loss)}, logits)
    assert int(stats.first_bad) == 2
    stats2 = EpochStats(torch.device("cpu"))
    for step, loss in enumerate([1.0, 3.0]):
        stats2.add(step, y, torch.tensor(loss), {"ce": torch.tensor(loss)}, logits)
    assert int(stats2.first_bad) == -1
    assert stats2.means() == {"train_acc": 0.5, "train_loss": 2.0, "train_ce": 2.0}


def _data(n=48):
    X, y = synthetic_images(n, num_classes=3, image_size=16, seed=0)
    d = ImageData(X, y, ["a", "b", "c"], "synthetic", "train")
    return d.subset(torch.arange(0, n - 12)), d.subset(torch.arange(n - 12, n), split="test")


def test_the_nan_stop_names_the_first_bad_step_however_rarely_it_looks(tmp_path):
    train_d, test_d = _data()
    bad = get_recipe("smoke", epochs=2, batch_size=4, train_subset=0, lr=1e30)
    msgs = []
    for every in (1, 1000):
        with pytest.raises(FloatingPointError, match=r"non-finite loss detected in epoch 1 at step \d+") as err:
            train("resnet8", train_d, test_d, bad, tmp_path / str(every), progress=False, nan_check_every=every,
                  precision="fp32")
        msgs.append(str(err.value).split(" (")[0])
        assert not (tmp_path / str(every) / MODEL).exists()
    assert msgs[0] == msgs[1]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resume_is_exact_in_every_precision(tmp_path, precision):
    train_d, test_d = _data()
    t = _teacher("resnet8", classes=3)
    kw = dict(method=Method("fkd"), teachers=[t], seed=2, progress=False, precision=precision)
    full = train("resnet8", train_d, test_d, get_recipe("smoke", epochs=2, batch_size=12, train_subset=0),
                 tmp_path / "full", **kw)
    train("resnet8", train_d, test_d, get_recipe("smoke", epochs=1, batch_size=12, train_subset=0),
          tmp_path / "cut", **kw)
    resumed = train("resnet8", train_d, test_d, get_recipe("smoke", epochs=2, batch_size=12, train_subset=0),
                    tmp_path / "cut", resume=True, **kw)
    assert resumed["provenance"]["config"]["engine"]["precision"] == precision
    a = torch.load(tmp_path / "full" / MODEL, weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / MODEL, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["result"]["history"] == [dict(h, wall_time_s=r["wall_time_s"]) for h, r in
                                            zip(full["result"]["history"], resumed["result"]["history"])]


def test_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(model, **kw):
        def run(*a, **k):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    xb, yb = _batch(8)
    torch.manual_seed(0)
    s = create_model("resnet8", num_classes=10).to(memory_format=torch.channels_last)
    step = TrainStep(s, [_teacher("resnet8")], Method("fkd"), torch.optim.SGD(s.parameters(), lr=0.1),
                     torch.device("cpu"), "fp32", compile=True)
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*eagerly"):
        loss, terms, _ = step(xb, yb)
    assert torch.isfinite(loss) and "fkd" in terms


def test_precision_auto_picks_the_devices_fast_dtype(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(amp, "cpu_bf16_faster", lambda: True)
    assert amp.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(amp, "cpu_bf16_faster", lambda: False)  # native but measured slower: float32
    assert amp.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(amp, "cpu_bf16_faster", lambda: True)
    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: False)
    assert amp.resolve_precision("auto", cpu) == "fp32"
    assert amp.resolve_precision("auto", torch.device("mps")) == "fp32"
    for capability, expected in (((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")):  # T4, A100, H100
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert amp.resolve_precision("auto", torch.device("cuda")) == expected
    assert amp.resolve_precision("fp16", cpu) == "fp16"
    with pytest.raises(ValueError, match="unknown precision"):
        amp.resolve_precision("fp8", cpu)
    assert not amp.grad_scaler(cpu, "bf16").is_enabled() and amp.grad_scaler(cpu, "fp16").is_enabled()


def test_a_grid_pins_its_precision_when_it_starts_and_refuses_another(tmp_path):
    from fkdlib.records import GRID, pinned

    calls = []
    assert pinned(tmp_path, "precision", "auto", lambda: calls.append(1) or "bf16") == "bf16"
    assert (tmp_path / GRID).exists() and calls == [1]
    # later, on a machine whose auto would say fp32: the pinned value, without resolving again
    assert pinned(tmp_path, "precision", "auto", lambda: calls.append(2) or "fp32") == "bf16" and calls == [1]
    assert pinned(tmp_path, "precision", "bf16", lambda: "fp32") == "bf16"
    with pytest.raises(ValueError, match="pinned precision='bf16'.*cannot go on with precision='fp32'"):
        pinned(tmp_path, "precision", "fp32", lambda: "fp32")
    assert pinned(tmp_path / "other", "precision", "fp32", lambda: "bf16") == "fp32"  # an explicit ask is pinned
