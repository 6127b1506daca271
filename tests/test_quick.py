"""The quickstart's loop (fkdlib.engine.quick): the engine's step and probe, the data's own normalisation, splits."""
import pytest
import torch

from fkdlib.data import ImageData, synthetic_images, to_float
from fkdlib.data.loader import normalize
from fkdlib.distill.methods import Method
from fkdlib.engine import quick
from fkdlib.engine.evaluate import Probe, penultimate_features
from fkdlib.engine.quick import accuracy_on, fit_in_memory, synthetic_splits
from fkdlib.models import create_model
from fkdlib.models.teachers import Teacher


@pytest.fixture(scope="module")
def data():
    X, y = synthetic_images(12, num_classes=3, image_size=16, seed=0)
    Xf = X.float() / 255   # the images' own statistics, far from CIFAR-100's
    return ImageData(X, y, ["a", "b", "c"], "synthetic", "train", tuple(Xf.mean((0, 2, 3)).tolist()),
                     tuple(Xf.std((0, 2, 3)).tolist()))


def _model(seed, name="resnet8"):
    torch.manual_seed(seed)
    return create_model(name, num_classes=3)


@pytest.fixture(scope="module")
def teacher(data):
    net = _model(1, "resnet14")
    fit_in_memory(net, data, steps=20, batch_size=12, progress=False)
    return Teacher(net, "resnet14", data.name, data.classes)


def test_cross_entropy_training_lowers_the_loss_and_learns(data):
    m = _model(0)
    hist = fit_in_memory(m, data, steps=30, batch_size=12, lr=0.05, progress=False)
    assert sum(hist["ce"][-5:]) / 5 < sum(hist["ce"][:5]) / 5
    assert hist["fkd"] == [0.0] * 30 and hist["loss"] == hist["ce"]    # plain training has no other term
    assert accuracy_on(m, data) > 0.6


def test_the_student_sees_the_data_normalised_with_its_own_mean_and_std(data):
    m, seen = _model(0), []
    m.conv1.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()) if mod.training else None)
    fit_in_memory(m, data, steps=2, batch_size=8, progress=False)
    own, cifar = normalize(data.X, data.mean, data.std), to_float(data.X)   # to_float: CIFAR-100's statistics
    for x in seen:
        assert x.shape == (8, 3, 16, 16)
        # every image of the batch is one of the data's images, normalised with the data's statistics, unaugmented
        assert all(torch.isclose(own, xi).flatten(1).all(1).any() for xi in x)
        assert not any(torch.isclose(cifar, xi).flatten(1).all(1).any() for xi in x)


def test_the_loop_is_the_engines_step(data, teacher, monkeypatch):
    calls = []

    class Spy(quick.TrainStep):
        def __call__(self, xb, yb, kd_x=None):
            calls.append(len(xb))
            return super().__call__(xb, yb, kd_x)

    monkeypatch.setattr(quick, "TrainStep", Spy)
    hist = fit_in_memory(_model(2), data, steps=5, batch_size=12, method=Method("fkd"), teachers=[teacher],
                         progress=False)
    assert calls == [12] * 5
    # the loss is the sum of methods.loss_terms' weighted terms: CE, lam_kd * FKD and lam_fr * FR (the defaults)
    for i in range(5):
        assert hist["loss"][i] == pytest.approx(hist["ce"][i] + hist["fkd"][i] + hist["fr"][i], rel=1e-5)
        assert hist["fkd"][i] > 0 and hist["fr"][i] > 0


def test_fkd_brings_the_student_kernel_closer_than_plain_training_and_leaves_the_teacher_alone(data, teacher):
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    probe = Probe(normalize(data.X[:12], data.mean, data.std), [teacher])
    end = {}
    for method in (Method("none"), Method("fkd", lam_kd=100.0)):
        student = _model(2)
        hist = fit_in_memory(student, data, steps=25, batch_size=12, method=method, teachers=[teacher], probe=probe,
                             progress=False)
        assert len(hist["kernel_alignment"]) == 26  # before training and after each step
        assert hist["kernel_distance"][-1] == pytest.approx(probe.metrics(student)["kernel_distance"])
        end[method.name] = hist["kernel_distance"][-1]
    assert end["fkd"] < 0.5 * end["none"]
    for k, v in teacher.model.state_dict().items():
        assert torch.equal(v, before[k]), f"teacher's {k} changed"


def test_same_seeds_give_the_same_run_and_other_seeds_other_batches(data):
    runs = [fit_in_memory(_model(5), data, steps=4, batch_size=8, seed=s, progress=False)["loss"] for s in (9, 9, 10)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_a_non_finite_loss_stops_training_with_the_step(data):
    m = _model(0)
    with torch.no_grad():
        m.fc.bias[0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite loss nan at step 0"):
        fit_in_memory(m, data, steps=3, batch_size=8, progress=False)


def test_fkd_without_teachers_is_refused(data):
    with pytest.raises(ValueError, match="teacher"):
        fit_in_memory(_model(0), data, steps=1, method=Method("fkd"))


def test_accuracy_is_counted_on_the_data_normalised_with_its_own_statistics(data):
    m = _model(3).eval()
    with torch.no_grad():
        right = (m(normalize(data.X, data.mean, data.std)).argmax(1) == data.y).float().mean().item()
    assert accuracy_on(m, data) == pytest.approx(right)


def test_synthetic_splits_are_disjoint_balanced_and_carry_the_training_images_statistics():
    splits = synthetic_splits({"train": 6, "val": 2, "test": 3}, num_classes=4, image_size=16, noise=0.4, seed=2)
    X, y = synthetic_images(11, 4, 16, seed=2, noise=0.4)
    assert [len(s) for s in splits.values()] == [24, 8, 12]
    for name, n in (("train", 6), ("val", 2), ("test", 3)):
        assert splits[name].class_counts() == {f"class {c}": n for c in range(4)}
    # together they are exactly the generator's images, each used once
    together = torch.cat([s.X.flatten(1) for s in splits.values()])
    assert len(torch.unique(together, dim=0)) == len(X) == len(together)
    assert torch.equal(together.sort(0).values, X.flatten(1).sort(0).values)
    train = splits["train"].X.float() / 255
    for s in splits.values():
        assert s.mean == pytest.approx(train.mean((0, 2, 3)).tolist(), abs=1e-4)
        assert s.std == pytest.approx(train.std((0, 2, 3)).tolist(), abs=1e-4)


def test_penultimate_features_are_what_feeds_the_classifier(data):
    m = _model(3).eval()
    h = penultimate_features(m, data.X[:5], data.mean, data.std, batch_size=2)
    with torch.no_grad():
        torch.testing.assert_close(m.fc(h), m(to_float(data.X[:5], data.mean, data.std)))
        other = penultimate_features(m, data.X[:5], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert not torch.allclose(h, other), "the statistics given are the ones used"
