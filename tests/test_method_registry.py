"""A method's home (fkdlib.distill.methods): one registry line adds a method that trains through the real engine;
every built-in method's records and loss terms are what they were before the methods had files of their own."""
import copy

import numpy as np
import pytest
import torch

import reference_maths as ref
from fkdlib.data import ImageData, synthetic_images
from fkdlib.distill.methods import LABEL_FREE, METHODS, Method, label, loss_terms, weights_label
from fkdlib.distill.methods.spec import Spec
from fkdlib.engine.train import train
from fkdlib.experiments.config import recipe as get_recipe
from fkdlib.experiments.tuning import run_name
from fkdlib.models import create_model
from fkdlib.models.teachers import Teacher
from test_crd import _reference_step


class LogitMSE(Spec):
    """A toy method: 0.5 * the mean squared difference between the student's logits and the teachers' mean logits."""

    label = "logit MSE"
    lam_kd = 0.5
    needs_label_space = True        # logits compare class by class
    term_on_labelled_batch = True

    def terms(self, m, b):
        target = torch.stack([logits for _, logits in b.teachers]).mean(0)
        return {"mse": m.lam_kd * (b.logits_s - target).pow(2).mean()}


def _data(classes=(0, 1, 2)):
    X, y = synthetic_images(36, num_classes=6, image_size=16, seed=0)
    keep = torch.isin(y, torch.tensor(classes))
    y_new = torch.tensor([list(classes).index(int(v)) for v in y[keep]])
    d = ImageData(X[keep], y_new, ["c0", "c1", "c2"], "synthetic", "train")
    return d.subset(torch.arange(0, len(d) - 8)), d.subset(torch.arange(len(d) - 8, len(d)), split="test")


def test_one_registry_line_adds_a_method_that_trains_through_the_engine_and_names_its_run(tmp_path, monkeypatch):
    train_d, test_d = _data()
    torch.manual_seed(0)
    teacher = Teacher(create_model("resnet8", num_classes=3), "resnet8", "synthetic", train_d.classes)
    recipe = get_recipe("smoke", epochs=2, batch_size=8, milestones=(1,), train_subset=0, probe_size=8)
    with monkeypatch.context() as registry:
        registry.setitem(METHODS, "logit-mse", LogitMSE())
        method = Method("logit-mse")
        rec = train("resnet8", train_d, test_d, recipe, tmp_path / "run", method=method, teachers=[teacher], seed=1,
                    progress=False)
        assert rec["provenance"]["config"]["method"] == {"name": "logit-mse", "lam_kd": 0.5, "lam_fr": 0.0,
                                                         "gamma": 1.0, "T": 4.0, "fr_squared": True, "normalize": True}
        assert rec["result"]["status"] == "done"
        assert [h["train_mse"] > 0 for h in rec["result"]["history"]] == [True, True]
        assert run_name(method) == "logit-mse_w0.5"
        assert label("logit-mse E=2") == "logit MSE E=2" and weights_label(method.to_dict()) == "weight 0.5"
        other = Teacher(create_model("resnet8", num_classes=5), "resnet8", "elsewhere", list("abcde"))
        with pytest.raises(ValueError, match="logit MSE needs teacher and student to share a label space"):
            train("resnet8", train_d, test_d, recipe, tmp_path / "refused", method=method, teachers=[other],
                  progress=False)
    assert "logit-mse" not in METHODS
    with pytest.raises(ValueError, match="unknown method 'logit-mse'"):
        Method("logit-mse")


def test_an_unknown_method_is_refused_with_the_list_of_methods():
    listed = "none, kd, rkd, sp, fkd, fkd-nofr, fr, crd"
    with pytest.raises(ValueError, match=f"unknown method 'fdk'; choose one of {listed}$"):
        Method("fdk")
    with pytest.raises(ValueError, match="unknown method 'fdk'"):
        weights_label({"name": "fdk", "lam_kd": 1.0})


def test_the_built_in_methods_record_what_they_recorded_before_the_registry():
    assert LABEL_FREE == ("rkd", "sp", "fkd", "fkd-nofr", "crd")
    common = {"T": 4.0, "fr_squared": True, "normalize": True}
    expected = {"none": (0.0, 0.0, 1.0), "kd": (0.9, 0.0, 0.1), "rkd": (1.0, 0.0, 1.0), "sp": (3000.0, 0.0, 1.0),
                "fkd": (100.0, 0.01, 1.0), "fkd-nofr": (100.0, 0.0, 1.0), "fr": (0.0, 0.01, 1.0),
                "crd": (0.8, 0.0, 1.0)}
    for name, (lam_kd, lam_fr, gamma) in expected.items():
        d = {"name": name, "lam_kd": lam_kd, "lam_fr": lam_fr, "gamma": gamma, **common}
        assert Method(name).to_dict() == (d if name != "crd" else {**d, "negatives": 16384}), name
    # weights a method does not read are recorded as 0 whatever is passed; FKD's concat is recorded
    assert Method("rkd", lam_fr=0.5).lam_fr == 0.0 and Method("fr", lam_kd=5.0).lam_kd == 0.0
    assert Method("none", lam_kd=5.0).lam_kd == 5.0
    assert Method("fkd-nofr", ensemble="concat").to_dict()["ensemble"] == "concat"
    assert [run_name(Method(n)) for n in expected] == ["none", "kd_w0.9", "rkd_w1", "sp_w3000", "fkd_w100_fr0.01sq",
                                                       "fkd-nofr_w100", "fr_fr0.01sq", "crd_w0.8"]
    assert [Method(n).teacher_features_used for n in expected] == [1, 1, 1, 2, 1, 1, 1, 1]
    assert [n for n in expected if Method(n).owns_modules] == ["crd"]
    assert [n for n in expected if Method(n).needs_indices] == ["crd"]
    assert [n for n in expected if not Method(n).needs_teacher] == ["none", "fr"]


# ---- every method's loss terms on fixed float64 inputs, against the formulas written out here -------------------
B = 6


def _inputs(E=2, seed=0):
    g = torch.Generator().manual_seed(seed)

    def t(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def outputs():  # (feats, logits): a (B, C, 4, 4) last conv map, a (B, D) penultimate embedding
        return [t(B, 3, 4, 4), t(B, 5)], t(B, 4)

    return {"student": outputs(), "y": torch.tensor([0, 3, 1, 1, 2, 0]), "teachers": [outputs() for _ in range(E)],
            "kd_student": outputs()[0], "kd_teachers": [outputs() for _ in range(E)]}


def _ce(logits, y):
    z = logits.numpy()
    log_p = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    return -np.mean(log_p[np.arange(len(y)), y.numpy()])


def _fr(h, squared):
    sq = (h.numpy() ** 2).sum(1)
    return np.mean(sq if squared else np.sqrt(sq))


def _expected(m: Method, x: dict, kd_batch: bool) -> dict:
    """The terms as the code before the registry wrote them, from the numpy formulas of ``reference_maths``."""
    (feats_s, logits_s), teachers = x["student"], x["teachers"]
    kd_s, kd_t = (x["kd_student"], x["kd_teachers"]) if kd_batch else (feats_s, teachers)
    out = {"ce": m.gamma * _ce(logits_s, x["y"])}
    if m.name == "kd":
        out["kd"] = m.lam_kd * ref.kd(logits_s.numpy(), [lt.numpy() for _, lt in teachers], m.T)
    elif m.name == "rkd":
        out["rkd"] = m.lam_kd * np.mean([ref.rkd(kd_s[-1].numpy(), ft[-1].numpy()) for ft, _ in kd_t])
    elif m.name == "sp":
        out["sp"] = m.lam_kd * np.mean([ref.sp(kd_s[-2].numpy(), ft[-2].numpy()) for ft, _ in kd_t])
    elif m.name in ("fkd", "fkd-nofr"):
        h_t = [ft[-1].numpy() for ft, _ in kd_t]
        h_t = [np.concatenate(h_t, 1)] if m.ensemble == "concat" else h_t
        out["fkd"] = m.lam_kd * ref.fkd(kd_s[-1].numpy(), h_t, normalize=m.normalize)
        if m.lam_fr > 0:
            out["fr"] = m.lam_fr * _fr(kd_s[-1], m.fr_squared)
    elif m.name == "fr":
        out["fr"] = m.lam_fr * _fr(feats_s[-1], m.fr_squared)
    return out


CASES = [Method("none"), Method("kd"), Method("kd", lam_kd=0.3, gamma=0.5, T=2.0), Method("rkd"), Method("sp"),
         Method("fkd"), Method("fkd", lam_kd=30.0, lam_fr=0.001, fr_squared=False), Method("fkd", normalize=False),
         Method("fkd", ensemble="concat"), Method("fkd-nofr"), Method("fkd-nofr", lam_kd=3.0, ensemble="concat"),
         Method("fr"), Method("fr", lam_fr=0.03, fr_squared=False)]


@pytest.mark.parametrize("E", [1, 2])
@pytest.mark.parametrize("kd_batch", [False, True])
@pytest.mark.parametrize("method", CASES, ids=run_name)
def test_each_methods_loss_terms_are_the_formulas_they_were(method, kd_batch, E):
    x = _inputs(E)
    kd = (x["kd_student"], x["kd_teachers"]) if kd_batch else (None, None)
    terms = loss_terms(method, *x["student"], x["y"], x["teachers"], *kd)
    expected = _expected(method, x, kd_batch)
    assert list(terms) == list(expected)   # the engine sums them in this order
    for k, v in expected.items():
        assert float(terms[k]) == pytest.approx(v, rel=1e-10, abs=1e-14), k


def test_crds_term_is_its_weight_times_a_float64_reading_of_the_equations():
    x, labels = _inputs(E=1), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    method, idx = Method("crd", lam_kd=0.7, negatives=8), torch.tensor([0, 4, 5, 7, 8, 9])
    own = method.build([48, 5], [[32, 5]], labels, seed=3).double()
    contrast = copy.deepcopy(own.negatives)(idx)   # the negatives the step will draw
    crit = own.losses[0]
    W = {"ws": crit.embed_s.linear.weight, "bs": crit.embed_s.linear.bias,
         "wt": crit.embed_t.linear.weight, "bt": crit.embed_t.linear.bias}
    W = {k: v.detach().clone() for k, v in W.items()}
    (feats_s, logits_s), ((feats_t, _),) = x["student"], x["teachers"]
    crd_ref, *_ = _reference_step(W, crit.memory.student.clone(), crit.memory.teacher.clone(), None, feats_s[-1],
                                  feats_t[-1], idx, contrast)
    terms = loss_terms(method, feats_s, logits_s, x["y"], x["teachers"], modules=own, idx=idx)
    assert list(terms) == ["ce", "crd"]
    assert float(terms["ce"]) == pytest.approx(_ce(logits_s, x["y"]), rel=1e-12)
    assert float(terms["crd"].detach()) == pytest.approx(0.7 * crd_ref, rel=1e-10)
    with pytest.raises(ValueError, match="modules Method.build made"):
        loss_terms(method, feats_s, logits_s, x["y"], x["teachers"])
