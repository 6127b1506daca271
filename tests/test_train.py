"""Tiny CPU runs of the training engine: what it learns, what it refuses, and that it resumes exactly."""
import json

import pytest
import torch

from fkdlib.data import ImageData, synthetic_images
from fkdlib.distill.methods import METHODS, Method
from fkdlib.experiments.config import recipe as get_recipe
from fkdlib.models.teachers import Teacher, load_teacher
from fkdlib.engine.train import train
from fkdlib.records import CHECKPOINT, MODEL, RECORD

RECIPE = get_recipe("smoke", epochs=3, batch_size=16, milestones=(2,), train_subset=0, probe_size=16)


def _data(classes=(0, 1, 2), n=24, seed=0, name="synthetic"):
    X, y = synthetic_images(n, num_classes=6, image_size=16, seed=seed)
    keep = torch.isin(y, torch.tensor(classes))
    remap = {c: i for i, c in enumerate(classes)}
    y_new = torch.tensor([remap[int(v)] for v in y[keep]])
    d = ImageData(X[keep], y_new, [f"c{c}" for c in classes], name, "train")
    return d.subset(torch.arange(0, len(d) - 12)), d.subset(torch.arange(len(d) - 12, len(d)), split="test")


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    train_d, test_d = _data()
    record = train("resnet8", train_d, test_d, get_recipe("smoke", epochs=4, batch_size=16, milestones=(3,),
                                                          train_subset=0), out, seed=0, progress=False)
    return out, record


def test_teacher_training_lowers_the_loss_and_writes_a_record_with_provenance(teacher_run):
    out, record = teacher_run
    hist = record["result"]["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    on_disk = json.loads((out / RECORD).read_text())
    assert on_disk["result"]["status"] == "done" and on_disk["result"]["epochs_done"] == 4
    prov = on_disk["provenance"]
    for key in ("git_commit", "git_dirty", "torch_version", "fkdlib_version", "device", "seed", "time_utc"):
        assert key in prov
    assert prov["config"]["arch"] == "resnet8" and prov["config"]["recipe"]["epochs"] == 4
    assert {"train_acc", "test_acc", "train_ce", "lr", "wall_time_s"} <= set(hist[-1])
    assert [h["lr"] for h in hist] == pytest.approx([0.02, 0.02, 0.02, 0.002])


@pytest.mark.parametrize("method", [m for m in METHODS if m != "none"])
def test_every_method_distils_from_a_saved_teacher(teacher_run, tmp_path, method):
    out, _ = teacher_run
    teacher = load_teacher(out / MODEL)
    train_d, test_d = _data()
    rec = train("resnet8", train_d, test_d, RECIPE, tmp_path, method=Method(method), teachers=[teacher],
                seed=1, progress=False)
    last = rec["result"]["final"]
    term = {"kd": "train_kd", "rkd": "train_rkd", "sp": "train_sp", "fkd": "train_fkd", "fkd-nofr": "train_fkd",
            "fr": "train_fr", "crd": "train_crd"}[method]
    assert last[term] > 0 and "kernel_alignment" in last
    assert ("train_fr" in last) == (method in ("fkd", "fr"))


def test_fkd_raises_kernel_alignment_over_plain_training(teacher_run, tmp_path):
    out, _ = teacher_run
    teacher = load_teacher(out / MODEL)
    train_d, test_d = _data()
    recipe = get_recipe("smoke", epochs=6, batch_size=8, milestones=(5,), train_subset=0, probe_size=16)
    dist = {}
    for name, method in [("none", Method("none")), ("fkd", Method("fkd", lam_kd=100.0))]:
        rec = train("resnet8", train_d, test_d, recipe, tmp_path / name, method=method, teachers=[teacher], seed=3,
                    progress=False)
        dist[name] = rec["result"]["final"]["kernel_distance"]
    assert dist["fkd"] < 0.3 * dist["none"]


def test_kd_across_label_spaces_is_refused_before_training(teacher_run, tmp_path):
    out, _ = teacher_run
    teacher = load_teacher(out / MODEL)
    train_d, test_d = _data(classes=(3, 4, 5))
    with pytest.raises(ValueError, match="share a label space.*rkd, sp, fkd"):
        train("resnet8", train_d, test_d, RECIPE, tmp_path, method=Method("kd"), teachers=[teacher], progress=False)
    assert not (tmp_path / CHECKPOINT).exists()


def test_fkd_across_datasets_runs_with_an_ensemble_and_separate_kernel_batches(teacher_run, tmp_path):
    out, _ = teacher_run
    t1 = load_teacher(out / MODEL)
    torch.manual_seed(5)
    from fkdlib.models import create_model
    t2 = Teacher(create_model("resnet14", num_classes=7), "resnet14", "elsewhere", [str(i) for i in range(7)])
    train_d, test_d = _data(classes=(3, 4, 5))
    unlabelled, _ = _data(classes=(0, 1, 2, 3, 4, 5), seed=9, name="synthetic-unlabelled")
    recipe = get_recipe("smoke", epochs=2, batch_size=8, kd_batch_size=24, milestones=(1,), train_subset=0,
                        probe_size=12)
    rec = train("resnet8", train_d, test_d, recipe, tmp_path, method=Method("fkd"), teachers=[t1, t2],
                kd_data=unlabelled, progress=False)
    assert rec["result"]["status"] == "done"
    assert rec["provenance"]["config"]["kd_data"] == "synthetic-unlabelled"
    assert len(rec["provenance"]["config"]["teachers"]) == 2


def test_a_killed_run_resumes_to_exactly_the_uninterrupted_weights(teacher_run, tmp_path):
    out, _ = teacher_run
    teacher = load_teacher(out / MODEL)
    train_d, test_d = _data()
    unlabelled, _ = _data(classes=(0, 1, 2, 3, 4, 5), seed=9)
    recipe = get_recipe("smoke", epochs=3, batch_size=16, kd_batch_size=20, milestones=(2,), train_subset=0,
                        probe_size=12)
    kw = dict(method=Method("fkd"), teachers=[teacher], kd_data=unlabelled, seed=4, progress=False)
    full = train("resnet8", train_d, test_d, recipe, tmp_path / "full", **kw)
    # "kill" after epoch 2 by running a 2-epoch job into the same folder, then resume the 3-epoch one
    short = get_recipe("smoke", epochs=2, batch_size=16, kd_batch_size=20, milestones=(2,), train_subset=0,
                       probe_size=12)
    train("resnet8", train_d, test_d, short, tmp_path / "cut", **kw)
    with pytest.raises(FileExistsError, match="resume=True"):
        train("resnet8", train_d, test_d, recipe, tmp_path / "cut", **kw)
    resumed = train("resnet8", train_d, test_d, recipe, tmp_path / "cut", resume=True, **kw)
    a = torch.load(tmp_path / "full" / MODEL, weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / MODEL, weights_only=True)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    assert [h["train_loss"] for h in resumed["result"]["history"]] == [h["train_loss"] for h in full["result"]["history"]]


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(teacher_run, tmp_path):
    out, _ = teacher_run
    teacher = load_teacher(out / MODEL)
    train_d, test_d = _data()
    train("resnet8", train_d, test_d, get_recipe("smoke", epochs=1, batch_size=16, train_subset=0), tmp_path,
          method=Method("fkd"), teachers=[teacher], progress=False)
    good = torch.load(tmp_path / CHECKPOINT, weights_only=True)["model"]
    bad_recipe = get_recipe("smoke", epochs=2, batch_size=16, train_subset=0, lr=1e30)
    with pytest.raises(FloatingPointError, match=r"non-finite loss detected in epoch 2 at step \d+.*epoch 1"):
        train("resnet8", train_d, test_d, bad_recipe, tmp_path, method=Method("fkd", lam_kd=1e30),
              teachers=[teacher], resume=True, progress=False)
    kept = torch.load(tmp_path / CHECKPOINT, weights_only=True)["model"]
    assert all(torch.equal(good[k], kept[k]) for k in good)


def test_repdistiller_style_checkpoints_load_as_teachers(tmp_path):
    from fkdlib.models import create_model
    torch.manual_seed(0)
    m = create_model("wrn_16_2", num_classes=100)
    folder = tmp_path / "wrn_16_2_vanilla"
    folder.mkdir()
    torch.save({"epoch": 240, "model": m.state_dict(), "accuracy": 73.3}, folder / "ckpt_epoch_240.pth")
    t = load_teacher(folder / "ckpt_epoch_240.pth")
    assert t.arch == "wrn_16_2" and t.dataset == "cifar100" and len(t.classes) == 100
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(t.model(x), m.eval()(x))
    assert not any(p.requires_grad for p in t.model.parameters())
    with pytest.raises(ValueError, match="does not fit architecture 'vgg8'"):
        load_teacher(folder / "ckpt_epoch_240.pth", arch="vgg8")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_teacher(tmp_path / "nope.pth")


def test_ensemble_accuracy_averages_probabilities_not_votes():
    from fkdlib.data.loader import DeviceLoader
    from fkdlib.engine.evaluate import ensemble_accuracy, evaluate_accuracy

    class Const(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.tensor(logits)

        def forward(self, x):
            return self.logits.expand(len(x), -1)

    X = torch.zeros(6, 3, 8, 8, dtype=torch.uint8)
    y = torch.zeros(6, dtype=torch.long)
    loader = DeviceLoader(X, y, 4, train=False, mean=(0.5,) * 3, std=(0.5,) * 3)
    sure0, unsure1a, unsure1b = Const([10.0, 0.0]), Const([0.0, 0.5]), Const([0.0, 0.5])
    # two of three members vote class 1, but the confident member's probability mass wins: class 0
    assert ensemble_accuracy([sure0, unsure1a, unsure1b], loader) == 1.0
    assert ensemble_accuracy([unsure1a], loader) == evaluate_accuracy(unsure1a, loader) == 0.0
