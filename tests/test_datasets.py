"""The dataset loaders, on tiny files written in each dataset's real on-disk format (never downloaded)."""
import io
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import fkdlib.data.cifar10_jpeg as cifar10_jpeg
from fkdlib.data import (CIFAR10_MEAN, DatasetNotFoundError, find_jpeg_copy, load_dataset, read_batch, to_float,
                         train_val_split)

_USER_CACHE = os.environ.get("FKD_CACHE_DIR")
REAL_JPEG_NPZ = find_jpeg_copy()   # the CIFAR-10 JPEG copy where load_real_images would find it, or None


@pytest.fixture(autouse=True)
def offline_and_isolated(monkeypatch, tmp_path, no_network):
    """No test may reach the network, read the user's data folder or write the user's cache."""
    monkeypatch.setenv("FKD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FKD_DATA_DIR", str(tmp_path / "no-data"))


def _dump(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=2))  # the protocol of the original Python 2 files


# ----------------------------------------------------------------------------------------------- CIFAR

def _write_cifar10(root, per_batch=2, n_test=3):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for i, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [(i + j) % 10 for j in range(n)]
        batches[name] = (data, labels)
        keys = (b"data", b"labels") if i % 2 else ("data", "labels")  # str or bytes keys, both seen in the wild
        _dump(folder / name, {keys[0]: data, keys[1]: labels, "batch_label": name})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {"label_names": names, "num_vis": 3072})
    return batches, names


def test_cifar10_pixels_labels_and_names_round_trip(tmp_path):
    batches, names = _write_cifar10(tmp_path)
    train = load_dataset("cifar10", root=tmp_path)
    test = load_dataset("cifar10", root=tmp_path / "cifar-10-batches-py", split="test")  # the folder itself
    data = np.concatenate([batches[f"data_batch_{b}"][0] for b in range(1, 6)])
    assert train.X.dtype == torch.uint8 and train.X.shape == (10, 3, 32, 32) and train.y.dtype == torch.int64
    # each row: 1024 red values row by row, then green, then blue
    assert np.array_equal(train.X[:, 0].numpy(), data[:, :1024].reshape(-1, 32, 32))
    assert np.array_equal(train.X[:, 2].numpy(), data[:, 2048:].reshape(-1, 32, 32))
    assert train.y.tolist() == sum((batches[f"data_batch_{b}"][1] for b in range(1, 6)), [])
    assert np.array_equal(test.X.reshape(3, -1).numpy(), batches["test_batch"][0])
    assert train.classes == names and (train.mean, train.label) == (CIFAR10_MEAN, "CIFAR-10")


def test_cifar100_fine_and_coarse_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = np.zeros((4, 3072), np.uint8)
    data[1, :1024] = 255  # pure red
    fine, coarse = [5, 99, 0, 42], [1, 19, 0, 7]
    _dump(folder / "train", {"data": data, "fine_labels": fine, "coarse_labels": coarse, "filenames": ["a"] * 4})
    _dump(folder / "test", {"data": data[:2], "fine_labels": fine[:2], "coarse_labels": coarse[:2]})
    _dump(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                            "coarse_label_names": [f"c{i}" for i in range(20)]})
    d = load_dataset("cifar100", root=tmp_path)
    assert d.y.tolist() == fine and d.num_classes == 100 and d.classes[99] == "f99"
    assert d.X[1, 0].eq(255).all() and d.X[1, 1:].eq(0).all()
    c = load_dataset("cifar100", root=tmp_path, split="test", coarse=True)
    assert c.y.tolist() == coarse[:2] and c.num_classes == 20 and len(c) == 2


def test_cifar_reader_refuses_pickles_that_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return os.getcwd, ()

    (tmp_path / "batch").write_bytes(pickle.dumps({"data": Evil()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        read_batch(tmp_path / "batch")


# ----------------------------------------------------------------------------------------------- STL-10

def _stl_image(seed):
    img = np.random.default_rng(seed).integers(0, 200, (3, 96, 96), dtype=np.uint8)
    img[:, 5, :] = 255  # one bright row: a missing transpose would make it a column
    return img


def test_stl10_binary_is_read_column_major_with_labels_shifted(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    imgs = np.stack([_stl_image(s) for s in range(3)])
    # the real layout: per image, per channel, column by column (Fortran order)
    imgs.transpose(0, 1, 3, 2).tofile(folder / "train_X.bin")
    np.array([1, 10, 4], np.uint8).tofile(folder / "train_y.bin")
    imgs[:2].transpose(0, 1, 3, 2).tofile(folder / "unlabeled_X.bin")
    (folder / "class_names.txt").write_text("\n".join(f"name{i}" for i in range(10)) + "\n")
    d = load_dataset("stl10", root=tmp_path)
    assert d.X.shape == (3, 3, 96, 96) and np.array_equal(d.X.numpy(), imgs)
    assert d.X[0, :, 5, :].eq(255).all() and not d.X[0, :, :, 5].eq(255).all()
    assert d.y.tolist() == [0, 9, 3] and d.classes[9] == "name9"
    u = load_dataset("stl10", root=tmp_path, split="unlabelled")
    assert u.y.tolist() == [-1, -1] and np.array_equal(u.X.numpy(), imgs[:2])
    assert u.class_counts()["unlabelled"] == 2


# ----------------------------------------------------------------------------------------------- Tiny-ImageNet

def _write_tiny(root):
    folder = root / "tiny-imagenet-200"
    wnids = ["n02", "n01", "n03"]
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (folder / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tcat\nn03\tbus, coach\nn04\tx\n")
    rng = np.random.default_rng(1)
    for w in wnids:
        (folder / "train" / w / "images").mkdir(parents=True)
        for k in range(2):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
                folder / "train" / w / "images" / f"{w}_{k}.JPEG")
    grey = Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), mode="L")
    grey.save(folder / "train" / "n03" / "images" / "n03_1.JPEG")  # some real ones are greyscale
    rows = [("val_0.JPEG", "n03"), ("val_1.JPEG", "n02"), ("val_2.JPEG", "n01")]
    for name, _ in rows:
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "val" / "images" / name)
    (folder / "val" / "val_annotations.txt").write_text("".join(f"{n}\t{w}\t0\t0\t63\t63\n" for n, w in rows))
    return folder


def test_tiny_imagenet_labels_decoding_greyscale_and_cache(tmp_path):
    folder = _write_tiny(tmp_path)
    train = load_dataset("tiny-imagenet", root=tmp_path)
    assert train.X.shape == (6, 3, 64, 64) and train.y.tolist() == [0, 0, 1, 1, 2, 2]  # wnids.txt order
    assert train.classes == ["cat", "goldfish", "bus"]
    first = np.asarray(Image.open(folder / "train" / "n02" / "images" / "n02_0.JPEG").convert("RGB"))
    assert np.array_equal(train.X[0].permute(1, 2, 0).numpy(), first)
    grey = train.X[5]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    val = load_dataset("tiny-imagenet", root=tmp_path, split="test")  # val serves as test
    assert val.split == "val" and val.y.tolist() == [2, 0, 1]

    for jpeg in folder.rglob("*.JPEG"):
        jpeg.unlink()
    again = load_dataset("tiny-imagenet", root=tmp_path)  # from the cache, not the (gone) JPEGs
    assert torch.equal(again.X, train.X) and torch.equal(again.y, train.y)
    with pytest.raises(DatasetNotFoundError, match="val_0.JPEG"):
        load_dataset("tiny-imagenet", root=tmp_path, split="val", cache=False)


# ----------------------------------------------------------------------------------------------- CIFAR-10 JPEG copy

def _jpeg(rng, size=32):
    smooth = np.kron(rng.integers(0, 256, (4, 4, 3)), np.ones((size // 4, size // 4, 1))).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(smooth).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def _write_jpeg_npz(path, n_train=6, n_test=3):
    rng = np.random.default_rng(2)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        blobs = [_jpeg(rng) for _ in range(n)]
        arrays[f"{split}_bytes"] = np.frombuffer(b"".join(blobs), np.uint8)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        arrays[f"y_{split}"] = np.arange(n, dtype=np.int64) % 10
    arrays["class_names"] = np.array(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                      "ship", "truck"])
    np.savez(path, **arrays)
    return arrays


def test_cifar10_jpeg_decodes_like_pillow_is_labelled_as_the_copy_and_cached(tmp_path, monkeypatch):
    arrays = _write_jpeg_npz(tmp_path / "cifar10_jpeg_bytes.npz")
    d = load_dataset("cifar10-jpeg", root=tmp_path)  # the folder; the file itself works too
    off, buf = arrays["train_offsets"], arrays["train_bytes"]
    for i in range(len(d)):
        ref = np.asarray(Image.open(io.BytesIO(buf[off[i]:off[i + 1]].tobytes())).convert("RGB"))
        assert np.array_equal(d.X[i].permute(1, 2, 0).numpy(), ref)
    assert d.y.tolist() == list(range(6)) and d.classes[0] == "airplane"
    assert d.label == "CIFAR-10 (JPEG q75 copy)" and d.name == "cifar10-jpeg" and "JPEG" in repr(d)

    monkeypatch.setattr(cifar10_jpeg, "decode_split", lambda *a: pytest.fail("decoded again"))
    again = load_dataset("cifar10-jpeg", root=tmp_path / "cifar10_jpeg_bytes.npz")
    assert torch.equal(again.X, d.X)
    monkeypatch.undo()
    assert len(load_dataset("cifar10-jpeg", root=tmp_path, split="test", cache=False)) == 3
    assert [p.name.split("-")[2] for p in (tmp_path / "cache").iterdir()] == ["train"]  # nothing cached for test


# ----------------------------------------------------------------------------------------------- not found

@pytest.mark.parametrize("name, expected", [
    ("cifar10", "data_batch_1"), ("cifar100", "meta"), ("stl10", "train_X.bin"),
    ("tiny-imagenet", "wnids.txt"), ("cifar10-jpeg", "cifar10_jpeg_bytes.npz")])
def test_missing_dataset_names_the_folder_the_files_and_the_remedy(tmp_path, name, expected):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(name, root=tmp_path / "data")
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert str(tmp_path / "data") in message and expected in message
    assert ("root=" if name == "cifar10-jpeg" else "download=True") in message


def test_default_root_is_fkd_data_dir(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "no-data")):
        load_dataset("cifar10")


@pytest.mark.parametrize("name, url", [
    ("cifar10", "cifar-10-python.tar.gz"), ("stl10", "stl10_binary.tar.gz"),
    ("tiny-imagenet", "tiny-imagenet-200.zip")])
def test_download_without_network_fails_with_the_same_guidance(tmp_path, name, url):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(name, root=tmp_path, download=True)
    message = str(err.value)
    assert message.startswith("could not download") and "URLError" in message and url in message
    assert str(tmp_path) in message and err.value.__cause__ is None


# ----------------------------------------------------------------------------------------------- splits

def test_train_val_split_is_disjoint_covering_and_seeded():
    train, val = train_val_split(100, 20, seed=0)
    assert len(val) == 20 and len(train) == 80
    assert sorted(torch.cat([train, val]).tolist()) == list(range(100))
    assert torch.equal(val, train_val_split(100, 20, seed=0)[1])
    assert not torch.equal(val, train_val_split(100, 20, seed=1)[1])
    assert len(train_val_split(100, 0.1)[1]) == 10
    with pytest.raises(ValueError):
        train_val_split(10, 10)


def test_synthetic_split_holdout_class_subset_and_stats():
    kw = dict(n_per_class=10, num_classes=4, image_size=16, seed=3)
    train, test = load_dataset("synthetic", **kw), load_dataset("synthetic", split="test", **kw)
    assert (len(train), len(test)) == (32, 8) and torch.equal(train.X, load_dataset("synthetic", **kw).X)
    fit, val = train.train_val(8, seed=0)
    assert (len(fit), len(val), val.split) == (24, 8, "val")

    five = load_dataset("synthetic", classes=["class 3", 1], stats="cifar10", **kw)
    assert five.classes == ["class 3", "class 1"] and five.mean == CIFAR10_MEAN
    assert torch.equal(five.y, (train.y[torch.isin(train.y, torch.tensor([1, 3]))] == 1).long())
    assert torch.equal(five.X, train.X[torch.isin(train.y, torch.tensor([1, 3]))])
    assert to_float(five.X, five.mean, five.std).dtype == torch.float32
    with pytest.raises(ValueError):
        train.select_classes(["no such class"])
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet-1k")


# ----------------------------------------------------------------------------------------------- the real file

@pytest.mark.skipif(REAL_JPEG_NPZ is None, reason="the CIFAR-10 JPEG copy is not here (FKD_DATA_DIR)")
def test_real_cifar10_jpeg_copy(monkeypatch):
    """The real 60,000 images: ~6 s the first time, then read from the user's cache (FKD_CACHE_DIR or
    ~/.cache/fkdlib), so it stays cheap."""
    if _USER_CACHE:
        monkeypatch.setenv("FKD_CACHE_DIR", _USER_CACHE)
    else:
        monkeypatch.delenv("FKD_CACHE_DIR")
    train = load_dataset("cifar10-jpeg", root=REAL_JPEG_NPZ)
    test = load_dataset("cifar10-jpeg", root=REAL_JPEG_NPZ, split="test")
    assert train.X.shape == (50000, 3, 32, 32) and test.X.shape == (10000, 3, 32, 32)
    assert torch.bincount(train.y).tolist() == [5000] * 10 and torch.bincount(test.y).tolist() == [1000] * 10
    means = train.X.sum(dim=(0, 2, 3), dtype=torch.int64).double() / (255 * 50000 * 32 * 32)
    assert torch.allclose(means, torch.tensor(CIFAR10_MEAN, dtype=torch.float64), atol=0.005)
    assert train.label == "CIFAR-10 (JPEG q75 copy)"
