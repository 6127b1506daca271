"""Notebook 01's library: picking real images, and looking at kernels (fkdlib.data.real, fkdlib.viz.explore)."""

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

import fkdlib.data.real as real
import fkdlib.viz.explore as explore
import fkdlib.viz.explorer as explorer_module
from fkdlib.data import DatasetNotFoundError, load_real_images
from fkdlib.viz.explore import (KernelExplorer, alignment_table, block_contrast, centre, class_means, class_share,
                                class_sorted,
                                effective_rank, kernel_grid, kernel_ridge_accuracy, plot_spectra, spearman, spectrum)
from fkdlib.records import cache_file, cached
from fkdlib.viz.explorer import ToggleRow
from fkdlib.distill.kernels import feature_kernel, kernel_alignment
from test_datasets import _write_cifar10, _write_jpeg_npz


# ----------------------------------------------------------------------------------------------- real images

@pytest.fixture
def isolated(monkeypatch, tmp_path, no_network):
    """No network, no user data or cache, and a repository whose sibling ../shared/data is empty."""
    monkeypatch.setenv("FKD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FKD_DATA_DIR", raising=False)
    monkeypatch.setattr(real, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setattr("fkdlib.data.common.REPO_ROOT", tmp_path / "repo")  # data_root()'s default <repo>/data
    return tmp_path


def test_real_images_prefer_the_jpeg_copy_from_an_explicit_path_and_say_so(isolated, capsys):
    _write_jpeg_npz(isolated / "somewhere.npz")
    d = load_real_images("train", root=isolated / "somewhere.npz")
    assert d.label == "CIFAR-10 (JPEG q75 copy)" and len(d) == 6
    out = capsys.readouterr().out
    assert "CIFAR-10 (JPEG q75 copy)" in out and "somewhere.npz" in out and "6 images" in out


@pytest.mark.parametrize("where", ["env", "sibling"])
def test_real_images_find_the_jpeg_copy_in_fkd_data_dir_or_the_shared_sibling(isolated, monkeypatch, where):
    folder = isolated / "env-data" if where == "env" else isolated / "shared" / "data"
    folder.mkdir(parents=True)
    _write_jpeg_npz(folder / "cifar10_jpeg_bytes.npz")
    if where == "env":
        monkeypatch.setenv("FKD_DATA_DIR", str(folder))
    assert real.find_jpeg_copy() == folder / "cifar10_jpeg_bytes.npz"
    assert load_real_images("test", verbose=False).label == "CIFAR-10 (JPEG q75 copy)"


def test_real_images_fall_back_to_cifar10_on_disk(isolated, capsys):
    _write_cifar10(isolated / "cifar")
    d = load_real_images("test", root=isolated / "cifar")
    assert d.label == "CIFAR-10" and d.name == "cifar10" and len(d) == 3
    assert "CIFAR-10, test split" in capsys.readouterr().out


def test_real_images_download_cifar10_when_nothing_is_here_and_explain_a_failure(isolated):
    with pytest.raises(DatasetNotFoundError) as err:
        load_real_images("train")  # downloads into <repo>/data: refused here, like any offline machine
    message = str(err.value)
    assert "JPEG copy is not at" in message and str(isolated / "shared" / "data") in message
    assert "could not download CIFAR-10" in message


def test_real_images_never_download_instead_of_a_named_npz(isolated, monkeypatch):
    monkeypatch.setattr(real, "load_cifar", lambda *a, **k: pytest.fail("fell back to CIFAR-10"))
    with pytest.raises(DatasetNotFoundError, match="missing.npz"):
        load_real_images("train", root=isolated / "missing.npz")


# ----------------------------------------------------------------------------------------------- kernels, looked at

def _blocks(per_class=4, classes=3, dim=16, noise=0.1, seed=0):
    """Features of a class-sorted batch: each class a random direction plus noise."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g)
    y = torch.arange(classes).repeat_interleave(per_class)
    return centres[y] + noise * torch.randn(len(y), dim, generator=g), y


def test_class_sorted_groups_the_first_examples_of_each_class_in_the_order_given():
    y = torch.tensor([2, 0, 1, 0, 2, 1, 0])
    assert class_sorted(y, 2).tolist() == [1, 3, 2, 5, 0, 4]
    assert class_sorted(y, 5, classes=[2, 0]).tolist() == [0, 4, 1, 3, 6]


def test_block_contrast_is_zero_for_a_constant_kernel_and_large_for_class_blocks():
    y = torch.arange(3).repeat_interleave(4)
    assert block_contrast(torch.ones(12, 12), y) == pytest.approx(0.0)
    assert block_contrast((y[:, None] == y[None, :]).float(), y) == pytest.approx(1.0)
    h, y = _blocks()
    assert block_contrast(feature_kernel(h), y) > 0.5


def test_class_means_average_each_block_without_the_diagonal():
    y = torch.tensor([0, 0, 1, 1, 1])
    K = torch.arange(25, dtype=torch.float).view(5, 5)
    M = class_means(K, y)
    assert M.shape == (2, 2)
    assert M[0, 0] == pytest.approx((K[0, 1] + K[1, 0]) / 2)
    assert M[0, 1] == pytest.approx(K[:2, 2:].mean())
    assert M[1, 1] == pytest.approx(K[2:, 2:][~torch.eye(3, dtype=torch.bool)].mean())
    assert class_means(torch.ones(5, 5), y).eq(1).all()


def test_spectrum_is_a_descending_distribution_and_effective_rank_counts_directions():
    h, _ = _blocks(classes=3, noise=0.0)
    s = spectrum(feature_kernel(h))
    assert torch.all(s[:-1] >= s[1:]) and s.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert s[3:].sum() < 1e-5  # three class directions, nothing else
    assert effective_rank(torch.ones(8, 8)) == pytest.approx(1.0)
    assert effective_rank(torch.eye(8)) == pytest.approx(8.0)


def test_centring_is_h_k_h_and_takes_out_the_all_alike_direction():
    y = torch.arange(3).repeat_interleave(6)
    noise = 0.02 * torch.randn(18, 8, generator=torch.Generator().manual_seed(0))
    h = 2.0 + torch.eye(8)[y] + noise                     # all-positive (like ReLU features), a direction per class
    K = feature_kernel(h)
    n = len(K)
    H = torch.eye(n) - torch.ones(n, n) / n
    assert torch.allclose(centre(K), H @ K @ H, atol=1e-5)
    assert torch.allclose(centre(K).sum(0), torch.zeros(n), atol=1e-4)   # the constant vector is in its null space
    # uncentred: "all images alike" carries nearly everything, and lambda_1 / trace >= the mean entry (Rayleigh, 1)
    assert spectrum(K)[0] > 0.9 and spectrum(K)[0] >= K.mean() - 1e-6 and effective_rank(K) < 1.3
    # centred: what is left is the three classes, two equal directions once their mean is out
    s = spectrum(K, centred=True)
    assert s[:2].sum() > 0.98 and effective_rank(K, centred=True) == pytest.approx(2.0, abs=0.1)
    assert effective_rank(torch.eye(8), centred=True) == pytest.approx(7.0)   # H has rank n - 1


def test_class_share_is_one_for_pure_class_structure_and_chance_for_none():
    y = torch.arange(4).repeat_interleave(50)                                   # C = 4 classes, n = 200
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 32, generator=g)
    assert class_share(feature_kernel(centres[y] + 5.0), y) == pytest.approx(1.0, abs=1e-6)   # offset: centred out
    blind = [class_share(feature_kernel(torch.randn(200, 300, generator=g)), y) for _ in range(5)]
    assert sum(blind) / 5 == pytest.approx(3 / 199, abs=0.006)                  # (C - 1) / (n - 1)
    mixed = class_share(feature_kernel(centres[y] + torch.randn(200, 32, generator=g)), y)
    assert 0.3 < mixed < 0.9                                                    # classes plus as much noise


def test_spectra_plot_reports_the_effective_rank_of_the_matrix_it_draws():
    h, _ = _blocks(per_class=6, classes=3, noise=0.05)
    K = feature_kernel(h)
    for centred in (False, True):
        fig, ax = plt.subplots()
        plot_spectra(ax, {"net": K}, num_classes=3, centred=centred)
        line = ax.get_lines()[0]
        assert line.get_ydata()[:5] == pytest.approx(spectrum(K, centred)[:5].numpy(), rel=1e-5)
        assert f"eff. rank {effective_rank(K, centred):.1f}" in ax.get_legend().get_texts()[0].get_text()
        assert ax.get_lines()[-1].get_xdata()[0] == (2.5 if centred else 3.5)   # C - 1 directions once centred
        plt.close(fig)


def test_spearman_sees_any_increasing_relation_and_its_reverse():
    a = torch.rand(50, generator=torch.Generator().manual_seed(0))
    assert spearman(a, a**3 + 1) == pytest.approx(1.0)
    assert spearman(a, -torch.exp(a)) == pytest.approx(-1.0)


def test_kernel_ridge_is_the_open_computation_and_separates_separable_features():
    h, y = _blocks(per_class=6, classes=3, noise=0.3)
    tr, te = torch.arange(len(y)) % 2 == 0, torch.arange(len(y)) % 2 == 1
    a, b = F.normalize(h[tr].double(), dim=1), F.normalize(h[te].double(), dim=1)
    alpha = torch.linalg.solve(a @ a.T + 0.1 * torch.eye(int(tr.sum()), dtype=torch.double),
                               F.one_hot(y[tr]).double())
    by_hand = float(((b @ a.T @ alpha).argmax(1) == y[te]).double().mean())
    assert kernel_ridge_accuracy(h[tr], y[tr], h[te], y[te], ridge=0.1) == pytest.approx(by_hand)
    assert by_hand == 1.0
    assert kernel_ridge_accuracy(h[tr], y[tr], h[te], y[te], normalize=False) == 1.0


def test_alignment_table_is_symmetric_with_unit_diagonal_and_matches_kernel_alignment():
    kernels = {f"net {s}": feature_kernel(_blocks(seed=s, noise=0.5)[0]) for s in range(3)}
    names, A = alignment_table(kernels)
    assert names == ["net 0", "net 1", "net 2"]
    assert torch.allclose(A, A.T) and torch.allclose(A.diagonal(), torch.ones(3), atol=1e-5)
    assert A[0, 1].item() == pytest.approx(float(kernel_alignment(kernels["net 0"], kernels["net 1"])), abs=1e-6)


def test_class_matrix_plot_is_diverging_around_zero_for_a_difference():
    fig, ax = plt.subplots()
    explore.plot_class_matrix(ax, -torch.rand(3, 3) - 0.1, ["a", "b", "c"], diverging=True)
    lo, hi = ax.collections[0].get_clim()
    assert lo == -hi and [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    plt.close(fig)


def test_kernel_grid_shares_a_scale_per_row_only_when_asked():
    h, y = _blocks()
    rows = {"normalised": {"a": feature_kernel(h), "b": feature_kernel(2 * h)},
            "raw": {"a": feature_kernel(h, False), "b": feature_kernel(2 * h, False)}}
    fig = kernel_grid(rows, y, shared=[True, False], class_names=["x", "y", "z"])
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["x", "y", "z"]
    assert fig.axes[0].get_yticks().tolist() == [1.5, 5.5, 9.5]  # the middle of each class's four rows
    assert len(images) == 4
    assert images[0].get_clim() == images[1].get_clim()       # one scale for the normalised row
    assert images[3].get_clim()[1] > 3 * images[2].get_clim()[1]  # raw: each its own (2h: four times the size)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------- the explorer

@pytest.fixture
def explorer(monkeypatch):
    calls = []
    original = explorer_module.feature_kernel
    monkeypatch.setattr(explorer_module, "feature_kernel",
                        lambda h, normalize=True: calls.append(1) or original(h, normalize))
    h, y = _blocks(per_class=5, classes=3)
    ex = KernelExplorer({"teacher": h, "student": h[:, :8], "untrained": torch.rand_like(h)}, y, ["a", "b", "c"])
    ex.calls = calls
    return ex


def test_explorer_still_imports_from_explore():
    assert explore.KernelExplorer is explorer_module.KernelExplorer


def test_explorer_computes_every_kernel_once_up_front_and_views_are_slices(explorer):
    assert len(explorer.calls) == 6 and explorer.max_per_class == 5  # 3 networks x (normalised, raw)
    h, y = _blocks(per_class=5, classes=3)
    kernels, labels = explorer.view(["teacher", "student"], [2, 0], per_class=3, kind="raw")
    idx = class_sorted(y, 3, [2, 0])
    assert labels.tolist() == [2, 2, 2, 0, 0, 0]
    assert torch.allclose(kernels["teacher"], feature_kernel(h[idx], normalize=False))
    assert torch.allclose(kernels["student"], feature_kernel(h[idx, :8], normalize=False))
    assert len(explorer.calls) == 6


def test_difference_view_is_the_networks_rho_minus_the_references(explorer):
    h, y = _blocks(per_class=5, classes=3)
    idx = class_sorted(y, 4, [0, 1, 2])
    assert explorer.reference == "teacher"
    diff, _ = explorer.view(["teacher", "student", "untrained"], [0, 1, 2], per_class=4, kind="difference")
    assert list(diff) == ["student", "untrained"]          # the reference minus itself is not drawn
    assert torch.allclose(diff["student"], feature_kernel(h[idx, :8]) - feature_kernel(h[idx]), atol=1e-6)
    other, _ = explorer.view(["teacher"], [0, 1, 2], per_class=4, kind="difference", reference="untrained")
    assert torch.allclose(other["teacher"], -explorer.view(["untrained"], [0, 1, 2], 4, "difference")[0]["untrained"])
    assert diff["student"].diagonal().abs().max() < 1e-6   # both normalised: unit diagonals cancel
    with pytest.raises(ValueError, match="kind"):
        explorer.view(["teacher"], [0], 2, kind="cosine")


def test_difference_figure_is_diverging_and_centred_on_zero_even_when_one_signed(explorer):
    fig = explorer.figure(["teacher", "untrained"], [0, 1, 2], 5, kinds=["normalised", "difference"])
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3                                 # teacher and untrained, then untrained - teacher
    lo, hi = images[2].get_clim()
    assert lo == -hi and hi > 0 and images[2].get_cmap().name == "RdBu_r"
    diff = explorer.view(["untrained"], [0, 1, 2], 5, "difference")[0]["untrained"]
    assert hi == pytest.approx(float(diff.abs().max()), rel=1e-5)
    assert "ρ − ρ(teacher)" in fig.axes[2].get_ylabel()
    plt.close(fig)
    with pytest.raises(ValueError, match="besides teacher"):
        explorer.figure(["teacher"], [0], 2, kinds=["difference"])


def test_toggle_row_picks_with_one_click_each_and_fires_once_per_change():
    row = ToggleRow([("a", 0), ("b", 1), ("c", 2)], value=(0, 2), description="classes", all_none=True)
    seen = []
    row.observe(lambda change: seen.append(change["new"]), names="value")
    assert row.value == (0, 2) and [b.value for b in row.buttons] == [True, False, True]
    row.buttons[1].value = True                             # a click on "b"
    row.buttons[0].value = False                            # a click on "a"
    assert row.value == (1, 2) and seen == [(0, 1, 2), (1, 2)]
    all_button, none_button = row.children[1].children[3:]
    none_button.click()
    assert row.value == () and not any(b.value for b in row.buttons) and seen[-1] == ()
    all_button.click()
    assert row.value == (0, 1, 2) and len(seen) == 4       # "all" sets three buttons but changes value once


def test_explorer_widget_redraws_on_every_control_without_recomputing_kernels(explorer, capsys):
    box = explorer.widget(networks=["teacher"], per_class=4)
    c = explorer.controls
    assert c["per_class"].continuous_update is False and c["per_class"].max == 5
    assert c["reference"].disabled and "fkd-kernel-explorer" in box._dom_classes
    draws = explorer.draws
    c["per_class"].value = 2
    c["kernel"].value = "raw"
    c["networks"].buttons[2].value = True                   # one click adds "untrained"
    c["classes"].buttons[0].value = False                   # one click drops class "a"
    assert c["networks"].value == ("teacher", "untrained") and c["classes"].value == (1, 2)
    assert explorer.draws == draws + 4 and len(explorer.calls) == 6
    c["kernel"].value = "difference"                        # untrained - teacher
    assert not c["reference"].disabled and explorer.draws == draws + 5
    c["networks"].value = ("teacher",)                      # only the reference: a message, not an error
    assert explorer.draws == draws + 5 and "besides teacher" in capsys.readouterr().out   # (no kernel: printed)
    c["reference"].value = "untrained"                      # now teacher - untrained
    assert explorer.draws == draws + 6
    c["classes"].value = ()                                 # nothing to show: a message, not an error
    assert explorer.draws == draws + 6
    assert box.children[1] is explorer.output
    assert len(explorer.calls) == 6
    plt.close("all")


def test_cache_runs_the_work_once_per_settings_and_reads_it_back(tmp_path, monkeypatch):
    monkeypatch.setenv("FKD_RESULTS_DIR", str(tmp_path))
    settings = {"steps": 10, "teacher": "resnet14", "seed": 0}
    path = cache_file("feature_kernels", settings)
    assert path.parent == tmp_path / "feature_kernels" / "checkpoints"
    assert cache_file("feature_kernels", dict(reversed(settings.items()))) == path      # order does not matter
    assert cache_file("feature_kernels", {**settings, "steps": 20}) != path             # other settings, other file
    runs = []
    make = lambda: runs.append(1) or {"weights": torch.arange(3.0), "seconds": 1.5}    # noqa: E731
    first, was_read = cached(path, make)
    again, read_back = cached(path, make)
    assert runs == [1] and (was_read, read_back) == (False, True)
    assert torch.equal(again["weights"], first["weights"]) and again["seconds"] == 1.5
