"""The teachers' diversity record: accuracies, shared errors and kernel distances, checked on toy models whose
answers are known by hand and against a float64 reference of the kernel distance."""
import pytest
import torch

from fkdlib.data.common import ImageData
from fkdlib.engine.diversity import diversity


class Toy(torch.nn.Module):
    """Predicts ``cls`` with logit margin ``margin`` whatever the image; its features are ``scale`` times
    (the image's mean, ``shift``)."""

    def __init__(self, cls, margin, scale=1.0, shift=1.0):
        super().__init__()
        self.cls, self.margin, self.scale, self.shift = cls, margin, scale, shift
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, is_feat=False):
        m = x.mean(dim=(1, 2, 3))
        feat = self.scale * torch.stack([m, torch.full_like(m, self.shift)], 1)
        logits = torch.zeros(len(x), 2)
        logits[:, self.cls] = self.margin
        return ([feat], logits) if is_feat else logits


def _data(n=8):
    X = (torch.arange(n) * 30).to(torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    return ImageData(X, torch.arange(n) % 2, ["a", "b"], "toy", "test", mean=(0.5,) * 3, std=(0.25,) * 3)


def _cosine_distance64(f_a, f_b):
    def rho(f):
        f = f.double()
        g = f @ f.T
        return g / torch.sqrt(torch.outer(g.diag(), g.diag()))
    d = (rho(f_a) - rho(f_b)) ** 2
    n = len(f_a)
    return float((d.sum() - d.diag().sum()) / (n * (n - 1)))


def test_errors_ensembles_and_kernels_of_known_models():
    data = _data()
    # A always says 0 (right on half), B always 1 (right on the other half): never wrong together, against 25% if
    # independent; A's larger margin wins the averaged probabilities, so the pair scores as A does
    a, b = Toy(0, 2.0), Toy(1, 1.0, scale=3.0)
    out = diversity([a, b], data, E=[1, 2], kernel_size=8)
    assert out["single_acc"] == pytest.approx([50.0, 50.0])
    assert out["ensemble_acc"] == pytest.approx({1: 50.0, 2: 50.0}) and out["gain"] == pytest.approx(0.0)
    assert out["both_wrong"] == pytest.approx(0.0) and out["both_wrong_if_independent"] == pytest.approx(25.0)
    # the normalised kernel ignores the features' scale: B's features are 3x A's
    assert out["kernel_distance"] == pytest.approx(0.0, abs=1e-7) and out["cka"] == pytest.approx(1.0, abs=1e-5)


def test_kernel_distance_matches_a_float64_reference_and_the_ensemble_moves_toward_the_others():
    data = _data()
    models = [Toy(0, 1.0, shift=1.0), Toy(0, 1.0, shift=0.2), Toy(0, 1.0, shift=5.0)]
    out = diversity(models, data, E=[1, 2, 3], kernel_size=8)
    x = (data.X.float() / 255 - 0.5) / 0.25
    m = x.mean(dim=(1, 2, 3))
    feats = [torch.stack([m, torch.full_like(m, s)], 1) for s in (1.0, 0.2, 5.0)]
    ref = {f"{i}-{j}": _cosine_distance64(feats[i], feats[j]) for i, j in [(0, 1), (0, 2), (1, 2)]}
    assert out["kernel_distance_pairs"] == pytest.approx(ref, rel=1e-4)
    assert out["kernel_distance"] == pytest.approx(sum(ref.values()) / 3, rel=1e-4)
    assert out["mean_kernel_distance"][1] == pytest.approx(0.0, abs=1e-9)
    assert out["mean_kernel_distance"][2] > 0 and out["cka"] < 1
    # members that make the same errors: both-wrong equals the shared error rate, above the independent product
    assert out["both_wrong"] == pytest.approx(50.0) and out["both_wrong_if_independent"] == pytest.approx(25.0)
