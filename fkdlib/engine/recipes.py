"""Training recipes (docs/paper.md §3.4): the paper's and RepDistiller's. Our reduced scales' recipes are sizes, so
they live with the other sizes (``fkdlib.experiments.config.recipe("lite")``).

Any field can be overridden: ``get_recipe("paper", epochs=10)``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Recipe:
    """SGD with momentum and a step schedule: lr x ``lr_decay`` at each epoch in ``milestones``."""

    epochs: int
    batch_size: int
    lr: float
    milestones: tuple[int, ...]
    weight_decay: float
    momentum: float = 0.9
    lr_decay: float = 0.1
    kd_batch_size: int | None = None   # a separate batch for the distillation term (None: the CE batch)
    train_subset: int | None = None    # train on N examples of a fixed shuffle (None or 0: all)
    test_subset: int | None = None     # evaluate each epoch on N examples of a fixed shuffle (None or 0: all)
    eval_last: int | None = None       # score the validation and test sets only in the last N epochs (None/0: every)
    eval_every: int | None = None      # with eval_last: also score them every N epochs (the convergence pilots' curves)
    eval_batch_size: int = 512
    probe_size: int = 256              # fixed test examples on which kernel alignment is tracked

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    # He & Ozay 2022, for the runs the authors trained themselves
    "paper": Recipe(epochs=160, batch_size=128, lr=0.1, milestones=(80, 120), weight_decay=1e-4),
    # RepDistiller's defaults: the released teachers and the * rows of the paper's table
    "repdistiller": Recipe(epochs=240, batch_size=64, lr=0.05, milestones=(150, 180, 210), weight_decay=5e-4),
}


def get_recipe(name: str | Recipe, **overrides) -> Recipe:
    """A preset by name (or a ``Recipe``), with any fields replaced; unknown names and fields are errors."""
    if isinstance(name, Recipe):
        base = name
    elif name in PRESETS:
        base = PRESETS[name]
    else:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(PRESETS)} (the smoke and lite recipes: "
                         "fkdlib.experiments.config.recipe)")
    unknown = set(overrides) - set(Recipe.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown recipe field(s) {sorted(unknown)}; fields: {', '.join(Recipe.__dataclass_fields__)}")
    if "milestones" in overrides and overrides["milestones"] is not None:
        overrides["milestones"] = tuple(overrides["milestones"])
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
