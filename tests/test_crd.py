"""CRD (fkdlib.distill.crd): its loss against an independent float64 reading of the equations, its gradients, its
memory, its negatives across label spaces, an exact resume and a run from the command line."""
import json
import math

import pytest
import torch

from fkdlib.cli import main
from fkdlib.data import ImageData, synthetic_images
from fkdlib.distill.crd import CRD, ClassNegatives, ContrastMemory, CRDLoss
from fkdlib.distill.methods import Method
from fkdlib.engine.step import TrainStep
from fkdlib.engine.train import train
from fkdlib.experiments.config import recipe as get_recipe
from fkdlib.models import create_model
from fkdlib.models.teachers import Teacher, save_model
from fkdlib.records import CHECKPOINT, MODEL

LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 2, 1, 0])


def _reference_step(W, mem_s, mem_t, Z, h_s, h_t, idx, contrast_idx, T=0.07, momentum=0.5):
    """One CRD step in float64, example by example, straight from the equations: the loss, the new memories and Z."""
    n_data, K, B = len(mem_s), contrast_idx.shape[1] - 1, len(idx)

    def embed(h, w, b):
        z = w @ h + b
        return z / math.sqrt(float(z @ z))

    v_s = [embed(h_s[i], W["ws"], W["bs"]) for i in range(B)]
    v_t = [embed(h_t[i], W["wt"], W["bt"]) for i in range(B)]
    e_s = torch.tensor([[math.exp(float(mem_t[j] @ v_s[i]) / T) for j in contrast_idx[i]] for i in range(B)],
                       dtype=torch.float64)
    e_t = torch.tensor([[math.exp(float(mem_s[j] @ v_t[i]) / T) for j in contrast_idx[i]] for i in range(B)],
                       dtype=torch.float64)
    if Z is None:
        Z = (float(e_s.mean()) * n_data, float(e_t.mean()) * n_data)
    loss = 0.0
    for P in (e_s / Z[0], e_t / Z[1]):
        for i in range(B):
            loss -= math.log(P[i, 0] / (P[i, 0] + K / n_data + 1e-7))
            loss -= sum(math.log((K / n_data) / (P[i, k] + K / n_data + 1e-7)) for k in range(1, K + 1))
    mem_s, mem_t = mem_s.clone(), mem_t.clone()
    for i, j in enumerate(idx.tolist()):
        for mem, v in ((mem_s, v_s[i]), (mem_t, v_t[i])):
            moved = momentum * mem[j] + (1 - momentum) * v
            mem[j] = moved / math.sqrt(float(moved @ moved))
    return loss / B, mem_s, mem_t, Z


def test_the_loss_matches_a_float64_reading_of_the_equations_over_two_steps():
    torch.manual_seed(0)
    crit = CRDLoss(6, 5, len(LABELS))
    W = {"ws": crit.embed_s.linear.weight, "bs": crit.embed_s.linear.bias,
         "wt": crit.embed_t.linear.weight, "bt": crit.embed_t.linear.bias}
    W = {k: v.detach().double() for k, v in W.items()}
    mem_s, mem_t, Z = crit.memory.student.double(), crit.memory.teacher.double(), None
    contrast = [torch.tensor([[0, 2, 4, 5, 3], [7, 4, 2, 2, 9], [3, 0, 8, 6, 11]]),
                torch.tensor([[1, 3, 9, 2, 8], [10, 0, 5, 6, 6], [5, 7, 1, 10, 3]])]
    for step, idx in enumerate([torch.tensor([0, 7, 3]), torch.tensor([1, 10, 5])]):
        h_s, h_t = torch.randn(3, 6), torch.randn(3, 5)
        ours = crit(h_s, h_t, idx, contrast[step])
        ref, mem_s, mem_t, Z = _reference_step(W, mem_s, mem_t, Z, h_s.double(), h_t.double(), idx, contrast[step])
        assert float(ours.detach()) == pytest.approx(ref, rel=1e-5)
        assert torch.allclose(crit.memory.student.double(), mem_s, atol=1e-6)
        assert torch.allclose(crit.memory.teacher.double(), mem_t, atol=1e-6)
        assert crit.memory.Z.double().tolist() == pytest.approx(list(Z), rel=1e-5)  # set by step 0, then kept


def test_the_memory_starts_uniform_as_repdistiller_draws_it():
    mem = ContrastMemory(128, 5000)
    stdv = 1 / math.sqrt(128 / 3)
    for bank in (mem.student, mem.teacher):
        assert bank.min() >= -stdv and bank.max() <= stdv
        assert float(bank.mean()) == pytest.approx(0.0, abs=2e-3)
        assert float(bank.var()) == pytest.approx((2 * stdv) ** 2 / 12, rel=0.02)
    assert mem.Z.tolist() == [-1.0, -1.0]


def test_the_memory_moves_the_batch_slots_with_momentum_half_renormalised_and_no_other():
    mem = ContrastMemory(4, 6)
    before_s, before_t = mem.student.clone(), mem.teacher.clone()
    idx = torch.tensor([4, 1])
    v_s = torch.nn.functional.normalize(torch.randn(2, 4), dim=1)
    v_t = torch.nn.functional.normalize(torch.randn(2, 4), dim=1)
    mem.update(idx, v_s, v_t)
    for after, before, v in ((mem.student, before_s, v_s), (mem.teacher, before_t, v_t)):
        moved = 0.5 * before[idx] + 0.5 * v
        assert torch.allclose(after[idx], moved / moved.norm(dim=1, keepdim=True))
        assert torch.allclose(after[idx].norm(dim=1), torch.ones(2))
        others = torch.tensor([0, 2, 3, 5])
        assert torch.equal(after[others], before[others])


def _nets(teacher_classes=7, student_classes=3, seed=0):
    torch.manual_seed(seed)
    student = create_model("resnet8", num_classes=student_classes)
    teacher = Teacher(create_model("resnet8", num_classes=teacher_classes), "resnet8", "elsewhere",
                      [f"t{c}" for c in range(teacher_classes)])
    return student, teacher


def test_gradients_reach_the_student_and_the_heads_and_never_the_teacher():
    student, teacher = _nets()
    method = Method("crd", negatives=16)
    own = method.build([0, 64], [[0, 64]], LABELS, seed=0)
    opt = torch.optim.SGD([*student.parameters(), *own.parameters()], lr=0.1)
    teacher_before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    heads_before = [p.clone() for p in own.parameters()]
    step = TrainStep(student, [teacher], method, opt, torch.device("cpu"), fold_teachers=False, modules=own)
    idx = torch.tensor([0, 3, 5, 8])
    x = torch.randn(4, 3, 16, 16)
    loss, terms, _ = step(x, LABELS[idx], None, idx)
    assert set(terms) == {"ce", "crd"} and float(terms["crd"]) > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in own.parameters())
    assert not any(torch.equal(a, b) for a, b in zip(heads_before, own.parameters()))  # the heads are optimised
    assert all(p.grad is None for p in teacher.model.parameters())
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.model.state_dict().items())
    assert not any(b.requires_grad for b in own.buffers())


def test_a_method_that_owns_modules_is_refused_without_them():
    student, teacher = _nets()
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="modules"):
        TrainStep(student, [teacher], Method("crd"), opt, torch.device("cpu"))


def test_negatives_are_drawn_with_replacement_among_the_other_classes_when_there_are_too_few():
    neg = ClassNegatives(LABELS, k=6000, seed=3)
    idx = torch.arange(len(LABELS))
    contrast = neg(idx)
    assert contrast.shape == (12, 6001) and torch.equal(contrast[:, 0], idx)
    for i in idx:
        drawn = contrast[i, 1:]
        assert (LABELS[drawn] != LABELS[i]).all()
        counts = torch.bincount(drawn, minlength=len(LABELS))[LABELS != LABELS[i]].double()
        assert (counts - counts.mean()).abs().max() < 0.15 * counts.mean()  # 8 others for 6000 draws: replacement
    again = ClassNegatives(LABELS, k=6000, seed=3)
    assert torch.equal(again(idx), contrast)
    with pytest.raises(ValueError, match="one class"):
        ClassNegatives(torch.zeros(5, dtype=torch.long))


def test_negatives_are_distinct_where_there_are_enough_as_repdistillers_sampler_draws_them():
    idx = torch.arange(len(LABELS))
    everyone = ClassNegatives(LABELS, k=8, seed=0)(idx)  # each class has exactly 8 others: all of them, once
    for i in idx:
        assert sorted(everyone[i, 1:].tolist()) == torch.nonzero(LABELS != LABELS[i]).flatten().tolist()
    firsts = torch.stack([ClassNegatives(LABELS, k=3, seed=s)(idx[:1])[0, 1] for s in range(400)])
    counts = torch.bincount(firsts, minlength=12)[LABELS != LABELS[0]].double()
    assert (counts > 0.5 * counts.mean()).all()  # a random set in random order, not the first examples
    # unequal classes: class 0 (2 examples) has 8 others, enough for 5 distinct; class 1 (8) has 2, so it replaces
    labels = torch.tensor([0, 1, 1, 1, 0, 1, 1, 1, 1, 1])
    contrast = ClassNegatives(labels, k=5, seed=1)(torch.arange(10))
    for i in range(10):
        drawn = contrast[i, 1:]
        assert (labels[drawn] != labels[i]).all()
        assert (len(set(drawn.tolist())) == 5) if labels[i] == 0 else set(drawn.tolist()) <= {0, 4}


def _data(classes=(0, 1, 2), n=24, seed=0):
    X, y = synthetic_images(n, num_classes=6, image_size=16, seed=seed)
    keep = torch.isin(y, torch.tensor(classes))
    y_new = torch.tensor([list(classes).index(int(v)) for v in y[keep]])
    d = ImageData(X[keep], y_new, [f"c{c}" for c in classes], "synthetic", "train")
    return d.subset(torch.arange(0, len(d) - 12)), d.subset(torch.arange(len(d) - 12, len(d)), split="test")


def test_a_teacher_from_another_label_space_distils_with_negatives_by_the_students_labels(tmp_path):
    _, teacher = _nets(teacher_classes=7)
    train_d, test_d = _data(classes=(3, 4, 5))
    recipe = get_recipe("smoke", epochs=1, batch_size=8, milestones=(1,), train_subset=0, probe_size=8)
    rec = train("resnet8", train_d, test_d, recipe, tmp_path, method=Method("crd", negatives=32), teachers=[teacher],
                seed=2, progress=False)
    assert rec["result"]["final"]["train_crd"] > 0
    assert rec["provenance"]["config"]["method"]["negatives"] == 32
    own = torch.load(tmp_path / CHECKPOINT, weights_only=True)["method_modules"]
    assert own["losses.0.memory.student"].shape == (len(train_d.y), 128)
    neg = ClassNegatives(train_d.y, k=200)
    contrast = neg(torch.arange(len(train_d.y)))
    assert (train_d.y[contrast[:, 1:]] != train_d.y[:, None]).all()


def test_crd_refuses_a_distillation_batch_of_its_own(tmp_path):
    _, teacher = _nets(teacher_classes=3)
    train_d, test_d = _data()
    recipe = get_recipe("smoke", epochs=1, batch_size=8, kd_batch_size=8, milestones=(1,), train_subset=0)
    with pytest.raises(ValueError, match="indices"):
        train("resnet8", train_d, test_d, recipe, tmp_path, method=Method("crd"), teachers=[teacher], progress=False)


def test_a_killed_crd_run_resumes_to_exactly_the_uninterrupted_weights_memory_and_negatives(tmp_path):
    _, teacher = _nets(teacher_classes=3, seed=1)
    train_d, test_d = _data()
    kw = dict(method=Method("crd", negatives=48), teachers=[teacher], seed=4, progress=False)
    recipe = get_recipe("smoke", epochs=3, batch_size=8, milestones=(2,), train_subset=0, probe_size=8)
    full = train("resnet8", train_d, test_d, recipe, tmp_path / "full", **kw)
    short = get_recipe("smoke", epochs=2, batch_size=8, milestones=(2,), train_subset=0, probe_size=8)
    train("resnet8", train_d, test_d, short, tmp_path / "cut", **kw)
    resumed = train("resnet8", train_d, test_d, recipe, tmp_path / "cut", resume=True, **kw)
    a = torch.load(tmp_path / "full" / MODEL, weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / MODEL, weights_only=True)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    own_a = torch.load(tmp_path / "full" / CHECKPOINT, weights_only=True)["method_modules"]
    own_b = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["method_modules"]
    assert {"losses.0.embed_s.linear.weight", "losses.0.memory.teacher", "losses.0.memory.Z",
            "negatives._extra_state"} <= set(own_a)
    assert (own_a["losses.0.memory.Z"] > 0).all()
    for k in own_a:
        if k.endswith("_extra_state"):
            assert torch.equal(own_a[k]["generator"], own_b[k]["generator"])
        else:
            assert torch.equal(own_a[k], own_b[k]), f"{k} differs after resume"
    losses = [[h["train_loss"] for h in rec["result"]["history"]] for rec in (full, resumed)]
    assert losses[0] == losses[1]


def test_the_state_of_a_crd_module_round_trips_with_its_generator():
    a = CRD(8, [5], LABELS, negatives=10, seed=7)
    b = CRD(8, [5], LABELS, negatives=10, seed=99)
    a.negatives(torch.tensor([0, 1]))
    b.load_state_dict(a.state_dict())
    idx = torch.tensor([2, 6, 9])
    assert torch.equal(a.negatives(idx), b.negatives(idx))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values())
               if isinstance(x, torch.Tensor))


def test_crd_distils_from_the_command_line(tmp_path, capsys):
    torch.manual_seed(0)
    teacher = create_model("resnet8", num_classes=10)
    save_model(tmp_path / "t.pt", teacher, "resnet8", "elsewhere", [f"t{c}" for c in range(10)])
    rc = main(["distill", "--model", "resnet8", "--teacher", str(tmp_path / "t.pt"), "--method", "crd",
               "--negatives", "64", "--dataset", "synthetic", "--preset", "smoke", "--quiet", "--precision", "fp32",
               "--out", str(tmp_path / "s")])
    out, _ = capsys.readouterr()
    assert rc == 0 and json.loads(out)["train_acc"] is not None
    record = json.loads((tmp_path / "s" / "result.json").read_text())
    method = record["provenance"]["config"]["method"]
    assert method == Method("crd", negatives=64).to_dict() and method["lam_kd"] == 0.8 and method["gamma"] == 1
    assert record["result"]["final"]["train_crd"] > 0
