"""Folding a frozen teacher's BatchNorm into its convolutions: the same features, fewer passes."""
import pytest
import torch
import torch.nn as nn

from fkdlib.engine.fold import FOLD_RTOL, conv_bn_pairs, fold_batchnorm, max_relative_difference
from fkdlib.models import create_model


def _trained_like(name, seed=0, classes=10):
    """A zoo model whose BatchNorms have non-trivial running statistics and affine parameters."""
    torch.manual_seed(seed)
    m = create_model(name, num_classes=classes)
    m.train()
    with torch.no_grad():
        m(torch.randn(16, 3, 32, 32))
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.weight.data.copy_(0.5 + torch.rand(mod.num_features, generator=g))
            mod.bias.data.copy_(0.2 * torch.randn(mod.num_features, generator=g))
    return m.eval()


def _assert_close_to_scale(a, b):
    """|a - b| <= FOLD_RTOL * max|a|: float32 tolerance relative to the feature's own scale."""
    scale = a.abs().max().clamp_min(1e-12)
    assert float((a - b).abs().max() / scale) <= FOLD_RTOL


@pytest.mark.parametrize("name", ["resnet8", "resnet20", "resnet8x4", "vgg8", "vgg13", "wrn_16_2", "ShuffleV1",
                                  "MobileNetV2", "ResNet18"])
def test_folded_teacher_gives_the_same_features_and_logits(name):
    m = _trained_like(name)
    f = fold_batchnorm(m)
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        for preact in (False, True):
            (fa, la), (fb, lb) = m(x, is_feat=True, preact=preact), f(x, is_feat=True, preact=preact)
            assert len(fa) == len(fb)
            for a, b in zip(fa, fb):  # every feature: feats[-1] for FKD/RKD, feats[-2] for SP, the rest
                _assert_close_to_scale(a, b)
            _assert_close_to_scale(la, lb)
        _assert_close_to_scale(m(x), f(x))


@pytest.mark.parametrize("name", ["resnet8", "vgg13"])
def test_folding_removes_every_batchnorm_after_a_conv_and_leaves_the_original_alone(name):
    m = _trained_like(name)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    f = fold_batchnorm(m)
    assert not any(isinstance(x, nn.BatchNorm2d) for x in f.modules())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    assert not f.training and not any(p.requires_grad for p in f.parameters())


def test_folded_features_are_close_in_channels_last_and_on_64px_inputs():
    m = _trained_like("vgg8").to(memory_format=torch.channels_last)
    f = fold_batchnorm(m).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        _assert_close_to_scale(m(x, is_feat=True)[0][-1], f(x, is_feat=True)[0][-1])


def test_preactivation_batchnorms_are_not_folded():
    # WRN's blocks apply BatchNorm before their convolutions: those are not fed by a conv and stay
    m = _trained_like("wrn_16_2")
    pairs = conv_bn_pairs(m, torch.randn(2, 3, 32, 32))
    assert pairs and all(m.get_submodule(bn).__class__ is nn.BatchNorm2d for _, bn in pairs)
    assert sum(isinstance(x, nn.BatchNorm2d) for x in fold_batchnorm(m).modules()) > 0


class _ConvOutputUsedTwice(nn.Module):
    """A conv whose output feeds its BatchNorm and, through a plain function, the output too."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        with torch.no_grad():
            self.bn.running_var.fill_(4.0)
            self.bn.running_mean.fill_(1.0)

    def forward(self, x):
        c = self.conv(x)
        return self.bn(c) + c


def test_a_fold_that_would_change_the_outputs_falls_back_to_the_unfolded_network():
    m = _ConvOutputUsedTwice().eval()
    with pytest.warns(RuntimeWarning, match="unfolded"):
        f = fold_batchnorm(m)
    assert any(isinstance(x, nn.BatchNorm2d) for x in f.modules())
    x = torch.randn(2, 3, 8, 8)
    assert max_relative_difference(m, f, x) == 0.0
