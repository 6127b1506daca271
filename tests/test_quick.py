import pytest
import torch

from fkdlib.data import synthetic_images, to_float
from fkdlib.engine.evaluate import accuracy, penultimate_features
from fkdlib.models import create_model
from fkdlib.engine.quick import fit_in_memory


@pytest.fixture(scope="module")
def data():
    return synthetic_images(12, num_classes=3, image_size=16, seed=0)


def _model(seed, name="resnet8"):
    torch.manual_seed(seed)
    return create_model(name, num_classes=3)


def test_cross_entropy_training_lowers_the_loss_and_learns(data):
    X, y = data
    m = _model(0)
    hist = fit_in_memory(m, X, y, steps=30, batch_size=12, lr=0.05, progress=False)
    assert sum(hist["ce"][-5:]) / 5 < sum(hist["ce"][:5]) / 5
    assert accuracy(m, X, y) > 0.6


def test_fkd_brings_the_student_kernel_closer_than_plain_training_and_leaves_the_teacher_alone(data):
    X, y = data
    teacher = _model(1, "resnet14")
    fit_in_memory(teacher, X, y, steps=20, batch_size=12, progress=False)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    end = {}
    for lam_kd in (0.0, 100.0):
        hist = fit_in_memory(_model(2), X, y, steps=25, batch_size=12, teachers=[teacher], lam_kd=lam_kd,
                             probe=X[:12], progress=False)
        assert len(hist["alignment"]) == 26  # before training and after each step
        end[lam_kd] = hist["probe_fkd"][-1]
    assert end[100.0] < 0.5 * end[0.0]
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), f"teacher's {k} changed"


def test_same_seeds_give_the_same_run(data):
    X, y = data
    runs = [fit_in_memory(_model(5), X, y, steps=4, batch_size=8, seed=9, progress=False)["loss"] for _ in range(2)]
    assert runs[0] == runs[1]


def test_a_non_finite_loss_stops_training_with_the_step(data):
    X, y = data
    m = _model(0)
    with torch.no_grad():
        m.fc.bias[0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite loss nan at step 0"):
        fit_in_memory(m, X, y, steps=3, batch_size=8, progress=False)


def test_fkd_without_teachers_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="teacher"):
        fit_in_memory(_model(0), X, y, steps=1, lam_kd=1.0)


def test_penultimate_features_are_what_feeds_the_classifier(data):
    X, _ = data
    m = _model(3).eval()
    h = penultimate_features(m, X[:5], batch_size=2)
    with torch.no_grad():
        torch.testing.assert_close(m.fc(h), m(to_float(X[:5])))
