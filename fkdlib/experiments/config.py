"""Scales and sizes: every experiment's and notebook's sizes at every scale, read through one function (``sizes``).
The multi-view simulation keeps its own (``fkdlib.theory.experiment.SIZES``, so that theory needs nothing of the
experiments); they are listed here too, as ``sizes("theory", scale)``.

Every notebook and experiment runs at one of three scales, chosen by one setting (the notebook's
``SCALE`` parameter, which defaults to the ``FKD_SCALE`` environment variable):

- ``smoke``: seconds on a CPU; what nbval and CI run. Proves the code path, claims nothing.
- ``lite``: a real but reduced run that a 2-core CPU finishes in minutes.
- ``full``: the paper's recipe, for a GPU.
"""
from __future__ import annotations

from ..engine.recipes import PRESETS, Recipe, get_recipe
from ..paths import SCALES, get_scale   # here too: config.get_scale, config.SCALES
from ..theory.experiment import SIZES as THEORY_SIZES

# the engine's recipe at our reduced scales (the paper's and RepDistiller's: fkdlib.engine.recipes.PRESETS); the
# experiments below start from one and replace what they settle themselves
RECIPES = {
    # seconds on a CPU: tests and nbval; proves the code path, claims nothing
    "smoke": Recipe(epochs=2, batch_size=16, lr=0.02, milestones=(1,), weight_decay=5e-4, train_subset=64,
                    eval_batch_size=64, probe_size=32),
    # minutes on 2 CPU cores: a real but reduced run
    "lite": Recipe(epochs=15, batch_size=128, lr=0.05, milestones=(8, 12), weight_decay=5e-4, train_subset=10_000),
}

# notebook 00: a teacher trained briefly on synthetic images, then a plain and an FKD student
_SIZES = {
    "quickstart": {
        # synthetic images made hard (16x16, pixel noise 0.5): the teacher learns from teacher_per_class labelled
        # images of each class, the students from student_per_class of them; val_per_class: validation images (the
        # weight sweep reads them), test_per_class: test images; seeds: paired student seeds (plain vs FKD)
        "smoke": dict(num_classes=4, image_size=16, noise=0.5, teacher_per_class=8, student_per_class=4,
                      val_per_class=3, test_per_class=4, batch_size=16, teacher_steps=10, student_steps=6,
                      probe_per_class=2, seeds=2),
        "lite": dict(num_classes=10, image_size=16, noise=0.5, teacher_per_class=100, student_per_class=10,
                     val_per_class=30, test_per_class=50, batch_size=64, teacher_steps=150, student_steps=100,
                     probe_per_class=6, seeds=3),
        "full": dict(num_classes=10, image_size=16, noise=0.5, teacher_per_class=500, student_per_class=10,
                     val_per_class=100, test_per_class=200, batch_size=64, teacher_steps=600, student_steps=200,
                     probe_per_class=10, seeds=5),
    },
    # notebook 01: a teacher, a student and a second-seed student trained alone with cross-entropy, on real images
    # (synthetic at smoke); per class: n_per_class training images, probe_per_class test images in the heatmaps,
    # ridge_per_class training images for the kernel machine, test_per_class test images to score it
    "feature_kernels": {
        "smoke": dict(data="synthetic", num_classes=4, n_per_class=16, batch_size=16, steps=10,
                      probe_per_class=6, ridge_per_class=16, test_per_class=10),
        "lite": dict(data="real", num_classes=10, n_per_class=400, batch_size=64, steps=300,
                     probe_per_class=30, ridge_per_class=200, test_per_class=100),
        "full": dict(data="real", num_classes=10, n_per_class=5000, batch_size=128, steps=4000,
                     probe_per_class=30, ridge_per_class=500, test_per_class=1000),
    },
}


_METHODS = ["none", "kd", "rkd", "sp", "fkd-nofr", "fkd", "fr"]

# notebook 04 / docs/paper.md §3.1: one teacher; per method, weights chosen on a held-out validation split (seed 0, more
# seeds where the winner's margin is under twice the validation standard error), then paired seeds of the choice.
# tuning: KD, RKD and SP at these multiples of RepDistiller's weight; FKD's lambda_KD (FKD without FR: the same at
# lambda_FR 0), then lambda_FR and the FR form at the chosen lambda_KD; "fr" is the FR-only control (no kernel term)
_TUNING = dict(multipliers=[1 / 3, 1.0, 3.0], fkd_lams=[30.0, 100.0, 300.0], fr_lams=[1e-3, 1e-2],
               fr_forms=["squared", "norm"], max_seeds=2)
_SIZES["method_comparison"] = {
    "smoke": dict(dataset="synthetic", data_kw=dict(n_per_class=16, num_classes=5, image_size=16), teacher="resnet14",
                  student="resnet8", preset="smoke", methods=_METHODS, seeds=[0, 1], val_size=20, teacher_size=0,
                  train_size=0, tuning=dict(_TUNING, multipliers=[1.0], fkd_lams=[100.0], fr_lams=[1e-2],
                                            fr_forms=["squared"], max_seeds=1),
                  teacher_recipe=dict(epochs=2, train_subset=0), student_recipe=dict(epochs=2, train_subset=0)),
    # The lite protocol, chosen on the plain student and the teacher alone, before any distillation run
    # (the pilots' run records: results/method_comparison/lite/pilots/). CIFAR-10 (JPEG q75 copy where the real one
    # is absent): 5,000 training images held out for validation; the resnet20 teacher sees 20,000 of the other
    # 45,000, each student a fixed 2,500 of those (about 250 a class). Why: at 5,000 images a student that fits
    # our budget (600 steps of 128) ends with train = test accuracy (53%: pilot none_b128_lr0.1_e15), still
    # limited by its steps; at 2,500 images the same steps take it past its test accuracy (train 66%, test 57%
    # after the second decay: pilot none_n2500_b128_lr0.1_e40), the memorising regime of the paper's students,
    # and the two learning-rate decays make it plateau. Tested once, on all 10,000 test images.
    # download: torchvision fetches CIFAR-10 on first use where neither it nor the JPEG copy is found
    "lite": dict(dataset="cifar10-real", download=True, teacher="resnet20", student="resnet8", preset="lite",
                 methods=_METHODS,
                 seeds=[0, 1, 2, 3, 4], val_size=5000, teacher_size=20000, train_size=2500, tuning=_TUNING,
                 teacher_recipe=dict(epochs=12, batch_size=128, lr=0.1, milestones=(6, 9), train_subset=0,
                                     test_subset=0, eval_last=3),
                 student_recipe=dict(epochs=30, batch_size=128, lr=0.1, milestones=(15, 23), train_subset=0,
                                     test_subset=0, eval_last=3)),
    # the paper's vgg13 -> vgg8 column on CIFAR-100 with its own recipe (160 epochs), 5 students per method
    "full": dict(dataset="cifar100", download=True, teacher="vgg13", student="vgg8", preset="paper",
                 methods=_METHODS, seeds=[0, 1, 2, 3, 4], val_size=5000, teacher_size=0, train_size=0,
                 tuning=_TUNING, teacher_recipe=dict(train_subset=0), student_recipe=dict(train_subset=0, eval_last=0)),
}


# The method comparison in the regime the paper tests (fkdlib.experiments.comparison.ConvergedGrid): students that
# have finished learning. Everything below was fixed before its first final run.
# - Regime: the doubling test's (results/convergence/lite/summary.json): REGIME_EPOCHS epochs, decays at 60% and
#   85%, the comparison's data (2,500 training images, 5,000 validation) and its committed resnet20 teacher.
#   The plain student passes from 200 epochs (200 -> 400: +0.38 validation), FKD (lambda 30) from 400 only
#   (200 -> 400: +1.81; 400 -> 800: +0.18), so 400; clean training accuracy there is 99.9 (plain) and 99.8 (FKD).
#   The teacher (74.9% test) stays 9.6 points above the converged plain student (65.3%): kept.
#   Images or seeds: the pilots' paired FKD - plain differences spread by 0.6 points (test) and 1.0 (validation)
#   between the two seeds, under the 1.5 at which more images would beat more seeds, so 2,500 images.
# - Tuning on seeds 90 and 91 (the pilots' seeds), which no final uses; every search brackets its choice
#   (max_extend values past an edge, on the 1-3-10 ladder); FKD's regulariser (squared, the paper's reading) also
#   climbs until it moves the mean feature norm by 20%, so the FR ablation tests a regulariser that acts.
# - Finals: seeds 0-5, none added after looking. Six paired seeds give a Holm-corrected test over six contrasts
#   about 1.4 points of power at the paired spread the earlier lite grid showed (0.8 points); five would give 1.8.
# - The family (the paper's claims of its Table 1: FKD against each baseline, and FR's part), Holm at 0.05;
#   every other difference the summary prints is exploratory.
REGIME_EPOCHS = 400
_REGIME_RECIPE = dict(epochs=REGIME_EPOCHS, batch_size=128, lr=0.1,
                      milestones=(round(0.6 * REGIME_EPOCHS), round(0.85 * REGIME_EPOCHS)), train_subset=0,
                      test_subset=0, eval_last=3, eval_every=REGIME_EPOCHS // 10)
_CONVERGED_TUNING = dict(multipliers=[1 / 3, 1.0, 3.0], fkd_lams=[10.0, 30.0, 100.0], fr_lams=[1e-3, 1e-2, 1e-1],
                         fr_forms=["squared"], max_seeds=2, max_extend=3, fr_min_norm_change=0.2)
_FAMILY = dict(family=[["fkd", "none"], ["fkd", "kd"], ["fkd", "rkd"], ["fkd", "sp"], ["fkd", "crd"],
                       ["fkd", "fkd-nofr"]], alpha=0.05,
               family_why="the paper's Table 1 claims: FKD above the plain student and each baseline (KD, RKD, SP, "
                          "CRD), and FR's part (FKD with and without it); fixed before the first final")
_CONVERGED_METHODS = [*_METHODS, "crd"]
# CRD's negatives at lite, fixed before CRD's first tuning run finished (the two started with 16,384 were stopped at
# 41 of 400 epochs and are not used). RepDistiller's 16,384 is a third of CIFAR-100's 50,000 training images; from
# the ~2,250 other-class images of 2,500 it means each negative drawn ~7 times, and an epoch cost 23x KD's (60.7 s
# against 5.5 s measured side by side; 400 epochs ~7 h a run). 2,048 is every class's other-class pool or less, so
# it is drawn without replacement (a distinct set, as RepDistiller draws), nearly the whole pool (CRD's own study:
# more distinct negatives help), and an epoch costs 10.6 s. ``check_settings`` refuses a run made with another value.
_LITE_CRD_NEGATIVES = 2048
_SIZES["method_comparison_converged"] = {
    "smoke": dict(_SIZES["method_comparison"]["smoke"], methods=_CONVERGED_METHODS, teacher_from="method_comparison",
                  tuning_seeds=[90, 91],
                  tuning=dict(_CONVERGED_TUNING, multipliers=[1.0, 3.0], fkd_lams=[30.0, 100.0], fr_lams=[1e-2, 1e-1],
                              max_seeds=1, max_extend=1),
                  student_recipe=dict(epochs=4, train_subset=0, milestones=(2, 3), eval_every=2, eval_last=1),
                  **_FAMILY),
    "lite": dict(_SIZES["method_comparison"]["lite"], methods=_CONVERGED_METHODS, teacher_from="method_comparison",
                 seeds=[0, 1, 2, 3, 4, 5],
                 tuning_seeds=[90, 91], tuning=dict(_CONVERGED_TUNING, crd_negatives=_LITE_CRD_NEGATIVES),
                 student_recipe=_REGIME_RECIPE,
                 **_FAMILY),
    "full": dict(_SIZES["method_comparison"]["full"], methods=_CONVERGED_METHODS, teacher_from="method_comparison",
                 tuning_seeds=[90, 91],
                 tuning=_CONVERGED_TUNING, **_FAMILY),
}

# the doubling test (fkdlib.experiments.convergence): how long the method comparison's students must train to have
# finished learning, decided on the plain student and FKD at one fixed weight (lambda_KD 30, no FR: the lite grid's
# earlier validated choice) before any other method runs. Budgets double with the schedule's shape kept (decays at
# 60% and 85% of the run); converged = doubling moves validation accuracy by under `tolerance` points (mean of the
# pilot seeds, each against its own shorter run). Pilot seeds are the comparison's tuning seeds, never a final's.
# eval_every: the curves' spacing (every epoch would cost more than training at 2,500 images).
_PILOT_METHODS = {"none": dict(name="none"), "fkd": dict(name="fkd", lam_kd=30.0, lam_fr=0.0)}
_SIZES["convergence"] = {
    "smoke": dict(protocol="method_comparison", epochs=[2, 4], max_epochs=4, fractions=[0.5, 0.75], seeds=[90, 91],
                  methods=_PILOT_METHODS, eval_every=1, tolerance=1.0),
    # 100 -> 200 moved one seed's plain student +1.5 points and FKD +2.6 (measured before this grid): 200 -> 400 is
    # the first pair expected to pass; 100 runs last, to show the curve. A method whose last doubling fails doubles
    # again, up to max_epochs.
    "lite": dict(protocol="method_comparison", epochs=[100, 200, 400], max_epochs=1600, fractions=[0.6, 0.85],
                 seeds=[90, 91], methods=_PILOT_METHODS, eval_every=10, tolerance=1.0),
    "full": dict(protocol="method_comparison", epochs=[80, 160, 320], max_epochs=640, fractions=[0.5, 0.75],
                 seeds=[90, 91],
                 methods=_PILOT_METHODS, eval_every=10, tolerance=1.0),
}

# notebook 02 / docs/paper.md §2: the multi-view simulation, sized where it lives (fkdlib.theory.experiment.SIZES)
_SIZES["theory"] = THEORY_SIZES


# notebook 05 / docs/paper.md §3.2, as the paper: one architecture for every teacher and student, each
# teacher trained with the students' own recipe on their own data (the method comparison's protocol at the same
# scale: its student, data and recipe), each with its own seed. KD's and FKD's weights are those the method
# comparison chose on validation at lite (results/method_comparison/lite/summary.json: KD x1 of RepDistiller's
# 0.9; FKD lambda_KD 30 with lambda_FR 0.001 on ||h||), not tuned again per E.
_ENSEMBLE_WEIGHTS = dict(kd=dict(lam_kd=0.9), fkd=dict(lam_kd=30.0, lam_fr=0.001, fr_squared=False))
_SIZES["ensemble_size"] = {
    "smoke": dict(protocol="method_comparison", E=[1, 2], seeds=[0, 1], teacher_seeds=[100, 101],
                  weights=_ENSEMBLE_WEIGHTS),
    "lite": dict(protocol="method_comparison", E=[1, 2, 4, 8], seeds=[0, 1, 2], teacher_seeds=list(range(100, 108)),
                 weights=_ENSEMBLE_WEIGHTS),
    "full": dict(protocol="method_comparison", E=[1, 2, 4, 8], seeds=[0, 1, 2, 3, 4],
                 teacher_seeds=list(range(100, 108)), weights=_ENSEMBLE_WEIGHTS),
}


# Ensemble size in the regime the paper tests (fkdlib.experiments.ensemble.ConvergedEnsembleGrid), fixed before any
# of its students: teachers = the converged comparison's plain student (400 epochs on its 2,500 images), seeds
# 100-107; their diversity is recorded first and the grid is valid only if the ensemble of eight beats the teachers'
# mean accuracy by min_gain points (the 30-epoch teachers gained 1.35; the paper's +5.3). Students: KD, FKD (mean
# kernel) and FKD (concatenated features) at each E, and the plain student, on seeds 0-5, with the weights the
# converged comparison chose. FKD's lambda is re-checked at E = 8 on tuning seed 90 (its teachers are resnet8s, not
# the comparison's resnet20): the comparison's lambda and its ladder neighbours, extended past an edge up to
# max_extend times until the choice is interior; the lambda chosen there serves every E, so that the E contrasts
# compare teacher counts at one weight. KD keeps the comparison's weight. The family, Holm at 0.05.
def _ensemble_family(E: list[int]) -> dict:
    """The ensemble grid's contrasts for the teacher counts ``E`` (most against fewest, FKD against KD at each)."""
    lo, hi = min(E), max(E)
    return dict(
        family=[[f"fkd E={hi}", f"fkd E={lo}"], [f"kd E={hi}", f"kd E={lo}"],
                *[[f"fkd E={e}", f"kd E={e}"] for e in E], [f"fkd E={hi}", "none"]], alpha=0.05,
        family_why="the paper's §3.2 claims: more teachers help FKD (and KD), FKD above KD at each E, and above the "
                   "plain student with the most teachers; fixed before the first student")


_SIZES["ensemble_size_converged"] = {
    "smoke": dict(protocol="method_comparison_converged", E=[1, 2], seeds=[0, 1], tuning_seeds=[90],
                  teacher_seeds=[100, 101], min_gain=3.0, kernel_images=64, weights_from="method_comparison_converged",
                  tuning=dict(max_seeds=1, max_extend=1), **_ensemble_family([1, 2])),
    "lite": dict(protocol="method_comparison_converged", E=[1, 2, 4, 8], seeds=[0, 1, 2, 3, 4, 5], tuning_seeds=[90],
                 teacher_seeds=list(range(100, 108)), min_gain=3.0, kernel_images=1000,
                 weights_from="method_comparison_converged", tuning=dict(max_seeds=1, max_extend=3),
                 **_ensemble_family([1, 2, 4, 8])),
    "full": dict(protocol="method_comparison_converged", E=[1, 2, 4, 8], seeds=[0, 1, 2, 3, 4], tuning_seeds=[90],
                 teacher_seeds=list(range(100, 108)), min_gain=3.0, kernel_images=1000,
                 weights_from="method_comparison_converged", tuning=dict(max_seeds=1, max_extend=3),
                 **_ensemble_family([1, 2, 4, 8])),
}


# notebook 06 / docs/paper.md §3.3: a teacher on one label space, students on another, with the method
# comparison's protocol: each method's weight, then its learning rate, chosen on a held-out validation split of the
# students' images by comparison.choose (contenders get a second seed), then paired seeds of the choice. RKD and SP
# try the multipliers of RepDistiller's weight, FKD the lambdas (the same multiples of its default 100, bracketing
# the paper's), all at the recipe's lr; then the chosen weight at the other lrs, the plain student alike. FKD keeps
# the feature regulariser the method comparison chose on validation (lambda_FR 0.001, ||h||: its summary.json).
# "fkd-unlabelled": FKD with the chosen weights, its kernel term on its own batch of unlabelled images (STL-10 style).
_CROSS_TUNING = dict(multipliers=[0.1, 0.3, 1.0, 3.0], fkd_lams=[10.0, 30.0, 100.0, 300.0],
                     fkd_fr=dict(lam_fr=0.001, fr_squared=False), lrs=[0.05, 0.2], max_seeds=2)
_SIZES["cross_dataset"] = {
    "smoke": dict(dataset="synthetic", data_kw=dict(n_per_class=16, num_classes=6, image_size=16), teacher="resnet14",
                  student="resnet8", teacher_classes=[0, 1, 2], student_classes=[3, 4, 5], preset="smoke",
                  methods=["none", "rkd", "sp", "fkd", "fkd-unlabelled"], seeds=[0, 1], val_size=12, teacher_size=0,
                  train_size=0, unlabelled_size=48, kd_batch_size=16,
                  tuning=dict(_CROSS_TUNING, multipliers=[1.0], fkd_lams=[100.0], lrs=[0.05], max_seeds=1),
                  teacher_recipe=dict(epochs=2, train_subset=0), student_recipe=dict(epochs=2, train_subset=0)),
    # CIFAR-10 (JPEG q75 copy where the real one is absent): a resnet20 teacher on 10,000 images of airplane,
    # automobile, bird, cat, deer; resnet8 students on 2,500 of dog, frog, horse, ship, truck (1,000 more held out
    # for validation), with the method comparison's student recipe (30 epochs, decays at 15 and 23: it plateaus);
    # the unlabelled pool is 20,000 training images of any class, the students' validation images excluded
    "lite": dict(dataset="cifar10-real", download=True, teacher="resnet20", student="resnet8",
                 teacher_classes=[0, 1, 2, 3, 4],
                 student_classes=[5, 6, 7, 8, 9], preset="lite", methods=["none", "rkd", "sp", "fkd", "fkd-unlabelled"],
                 seeds=[0, 1, 2, 3, 4, 5], val_size=1000, teacher_size=10000, train_size=2500, unlabelled_size=20000,
                 kd_batch_size=128, tuning=_CROSS_TUNING,
                 teacher_recipe=dict(epochs=12, batch_size=128, lr=0.1, milestones=(6, 9), train_subset=0,
                                     test_subset=0, eval_last=3),
                 student_recipe=dict(epochs=30, batch_size=128, lr=0.1, milestones=(15, 23), train_subset=0,
                                     test_subset=0, eval_last=3)),
    # the paper: a CIFAR-100 vgg13 teacher, vgg8 students on CIFAR-10 (STL-10 and Tiny-ImageNet alike)
    "full": dict(dataset="cifar10", teacher_dataset="cifar100", download=True, teacher="vgg13", student="vgg8",
                 teacher_classes=None, student_classes=None, preset="paper",
                 methods=["none", "rkd", "sp", "fkd", "fkd-unlabelled"], seeds=[0, 1, 2, 3, 4], val_size=5000,
                 teacher_size=0, train_size=0, unlabelled_size=50000, kd_batch_size=512,
                 tuning=_CROSS_TUNING, teacher_recipe=dict(train_subset=0),
                 student_recipe=dict(train_subset=0, eval_last=0)),
}


# Cross-dataset distillation in the regime the paper tests (fkdlib.experiments.cross.ConvergedCrossGrid), fixed before
# any of its runs.
# - The teacher knows its data: a resnet20 on every training image of its label space (airplane, automobile, bird,
#   cat, deer: 25,000 images), trained as long as its own doubling test says (teacher_convergence: pilots on all but
#   2,500 held-out images of those classes, scored on them; budgets double with the decays at half and three
#   quarters of the run, from 15 -> 30 epochs, until the mean change over seeds 90 and 91 is under a point). The
#   teacher then trains on all 25,000 at the shortest budget that passed.
# - The students: the converged method comparison's regime (REGIME_EPOCHS epochs on 2,500 images, decays at 60% and
#   85%) on the other label space; 1,000 held-out images of it choose every weight and learning rate, on tuning seeds
#   90 and 91 (no final uses them), searches that bracket. Tie rule, stated before the search: an exact validation
#   tie between learning rates keeps the plain student's chosen learning rate (the plain student's own tie keeps the
#   recipe's). FKD's regulariser is the one the converged method comparison chose (fkd_fr_from); FKD waits for it.
# - Finals on seeds 0-5; the family, Holm at 0.05.
_CONVERGED_CROSS_TUNING = dict(_CROSS_TUNING, multipliers=[1 / 3, 1.0, 3.0], fkd_lams=[10.0, 30.0, 100.0],
                               max_extend=3)
_CROSS_FAMILY = dict(family=[["fkd", "none"], ["fkd", "rkd"], ["fkd", "sp"], ["fkd-unlabelled", "fkd"]], alpha=0.05,
                     family_why="the paper's §3.3 claims: FKD helps a student of another label space, more than RKD "
                                "and SP, and a kernel batch of unlabelled images helps further; fixed before any run",
                     fkd_fr_from="method_comparison_converged")
_SIZES["cross_dataset_converged"] = {
    "smoke": dict(_SIZES["cross_dataset"]["smoke"], tuning_seeds=[90, 91],
                  tuning=dict(_SIZES["cross_dataset"]["smoke"]["tuning"], max_extend=1),
                  teacher_convergence=dict(epochs=[1, 2], max_epochs=4, fractions=[0.5, 0.75], seeds=[90, 91],
                                           val_size=8, tolerance=1.0, eval_every=1),
                  student_recipe=dict(epochs=4, train_subset=0, milestones=(2, 3), eval_every=2, eval_last=1),
                  **_CROSS_FAMILY),
    "lite": dict(_SIZES["cross_dataset"]["lite"], teacher_size=0, tuning_seeds=[90, 91], tuning=_CONVERGED_CROSS_TUNING,
                 teacher_convergence=dict(epochs=[15, 30], max_epochs=120, fractions=[0.5, 0.75], seeds=[90, 91],
                                          val_size=2500, tolerance=1.0, eval_every=5),
                 student_recipe=_REGIME_RECIPE, **_CROSS_FAMILY),
    "full": dict(_SIZES["cross_dataset"]["full"], tuning_seeds=[90, 91], tuning=_CONVERGED_CROSS_TUNING,
                 teacher_convergence=dict(epochs=[120, 240], max_epochs=480, fractions=[0.625, 0.75, 0.875],
                                          seeds=[90, 91], val_size=5000, tolerance=1.0, eval_every=10),
                 **_CROSS_FAMILY),
}


def sizes(name: str, scale: str | None = None, **overrides) -> dict:
    """The sizes of experiment or notebook ``name`` at ``scale`` with any ``overrides`` (``E=[1, 2]``), as a fresh
    dict; an override of a size that does not exist is an error."""
    if name not in _SIZES:
        raise ValueError(f"no sizes defined for {name!r}; known: {', '.join(sorted(_SIZES))}")
    base = _SIZES[name][get_scale(scale)]
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise ValueError(f"{name} has no size(s) {', '.join(unknown)}; its sizes: {', '.join(sorted(base))}")
    return {**base, **overrides}


def recipe(preset: str, **overrides) -> Recipe:
    """The training recipe ``preset`` (``smoke``, ``lite``, or the engine's ``paper``, ``repdistiller``), with any
    fields replaced: ``recipe("lite", epochs=30)``."""
    if preset not in RECIPES and preset not in PRESETS:
        raise ValueError(f"unknown recipe {preset!r}; choose one of {', '.join([*RECIPES, *PRESETS])}")
    return get_recipe(RECIPES.get(preset, preset), **overrides)
