import copy
import functools
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from fkdlib.models import classifier_of, create_model, feature_dim, list_models

SPEC = json.loads((Path(__file__).parent / "fixtures" / "repdistiller_cifar100_state_dicts.json").read_text())
NAMES = list_models()
# One of each family, plus the models whose pooling depends on the input size.
SIZE_SUBSET = ["vgg8", "resnet8x4", "wrn_16_2", "ResNet18", "ShuffleV1", "ShuffleV2", "MobileNetV2"]
# RepDistiller's fixed final pool kernel, which must equal the last map's size at 32x32 for the
# adaptive pooling used here to give RepDistiller's results.
REPDISTILLER_POOL = {"resnet": 8, "wrn": 8, "Shuffle": 4, "MobileNetV2": 2, "mobile_half": 2}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Two intra-op threads on a two-core machine that is busy elsewhere run ~10x slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def _calibrate(model, seed):
    """Give the BN layers the running statistics of a random batch, so eval logits are O(1)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()(torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(seed)))
    for bn in bns:
        bn.momentum = 0.1
    return model.eval()


def _build(name, seed, num_classes=100):
    torch.manual_seed(seed)
    with torch.no_grad():
        return _calibrate(create_model(name, num_classes), seed)


@functools.lru_cache(maxsize=None)
def _model(name):
    """A shared eval-mode instance; tests must not modify it."""
    return _build(name, seed=0)


def _x(size=32, batch=2, seed=1):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _shapes(state_dict):
    return [(k, list(v.shape)) for k, v in state_dict.items()]


def _diff_report(got, want, limit=8):
    got_d, want_d = dict(got), dict(want)
    lines = [f"missing: {k} {s}" for k, s in want if k not in got_d][:limit]
    lines += [f"unexpected: {k} {s}" for k, s in got if k not in want_d][:limit]
    lines += [f"shape: {k} got {got_d[k]} want {s}" for k, s in want if k in got_d and got_d[k] != s][:limit]
    if not lines:
        first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        lines = [f"order differs from key {first}: got {got[first][0]} want {want[first][0]}"]
    return "\n".join(lines)


def test_every_fixture_model_is_registered():
    assert set(SPEC) <= set(NAMES)


def test_list_models_is_sorted_and_covers_the_repdistiller_zoo():
    assert NAMES == sorted(NAMES)
    zoo = {"vgg11", "vgg16", "vgg19", "resnet8", "resnet14", "resnet32", "resnet44", "wrn_16_1", "wrn_40_1"}
    assert zoo | {"ShuffleV2", "MobileNetV2", "mobile_half", "ResNet18", "ResNet152"} <= set(NAMES)


@pytest.mark.parametrize("name", sorted(SPEC))
def test_state_dict_matches_repdistiller(name):
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == SPEC[name]["num_params"]
    got, want = _shapes(model.state_dict()), list(SPEC[name]["state_dict"].items())
    assert got == want, f"{name} state_dict differs from RepDistiller's:\n" + _diff_report(got, want)


@pytest.mark.parametrize("name", NAMES)
def test_strict_load_round_trip_gives_identical_outputs(name):
    source = _model(name)
    torch.manual_seed(1)
    fresh = create_model(name).eval()
    x = _x()
    assert not torch.allclose(fresh(x), source(x))
    fresh.load_state_dict(copy.deepcopy(source.state_dict()), strict=True)
    torch.testing.assert_close(fresh(x), source(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_feats_end_with_last_map_and_the_embedding_fed_to_the_classifier(name):
    model, x = _model(name), _x()
    feats, logits = model(x, is_feat=True)
    D = feature_dim(model)
    assert D == classifier_of(model).in_features
    assert feats[-1].shape == (2, D)
    assert feats[-2].dim() == 4
    assert logits.shape == (2, 100)
    torch.testing.assert_close(logits, model(x))
    torch.testing.assert_close(classifier_of(model)(feats[-1]), logits)

    pre_feats, pre_logits = model(x, is_feat=True, preact=True)
    torch.testing.assert_close(pre_logits, logits)
    assert [f.shape for f in pre_feats] == [f.shape for f in feats]


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith(tuple(REPDISTILLER_POOL))])
def test_last_map_at_32_matches_repdistillers_fixed_pool(name):
    kernel = next(k for prefix, k in REPDISTILLER_POOL.items() if name.startswith(prefix))
    feats, _ = _model(name)(_x(), is_feat=True)
    assert feats[-2].shape[-2:] == (kernel, kernel)


@pytest.mark.parametrize("size", [64, 96])
@pytest.mark.parametrize("name", SIZE_SUBSET)
def test_larger_inputs(name, size):
    model = _model(name)
    feats, logits = model(_x(size), is_feat=True)
    assert feats[-1].shape == (2, feature_dim(model))
    assert logits.shape == (2, 100)
    assert torch.isfinite(logits).all()


def test_vgg_pool3_applies_only_to_64x64_inputs():
    model = _model("vgg8")
    sides = {size: model(_x(size), is_feat=True)[0][-2].shape[-1] for size in (32, 64, 96)}
    assert sides == {32: 4, 64: 4, 96: 12}


def test_unknown_name_lists_the_available_models():
    with pytest.raises(ValueError) as info:
        create_model("nope")
    assert all(name in str(info.value) for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_num_classes_changes_only_the_classifier(name):
    base, ten = create_model(name), create_model(name, num_classes=10)
    head = {n for n, m in base.named_modules() if m is classifier_of(base)}.pop()
    changed = {k for (k, a), (_, b) in zip(_shapes(base.state_dict()), _shapes(ten.state_dict())) if a != b}
    assert base.state_dict().keys() == ten.state_dict().keys()
    assert changed == {f"{head}.weight", f"{head}.bias"}
    assert classifier_of(ten).out_features == 10


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_matches_contiguous(name):
    # float64, because in float32 the two layouts' conv kernels round differently by up to 5e-4
    # over ResNet152's depth, which would hide a real layout bug behind a loose tolerance.
    model = copy.deepcopy(_model(name)).double()
    x = _x().double()
    expected = model(x)
    got = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
