"""Saving trained networks and loading them back as frozen teachers.

A saved model is a dict whose ``"model"`` entry is the state_dict, as RepDistiller's checkpoints are,
so both load the same way; ours also record the architecture, the label space and provenance. Both are
read through ``fkdlib.models.checkpoints``, which refuses a file that could run code unless ``trust=True``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import checkpoints as _safe
from . import create_model


@dataclass
class Teacher:
    """A frozen network and the label space it was trained on (``dataset`` and its ``classes``).

    KD needs teacher and student to share a label space; FKD, RKD and SP do not.
    """

    model: torch.nn.Module
    arch: str
    dataset: str
    classes: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self):
        self.model.eval().requires_grad_(False)

    def label_space(self) -> tuple:
        return (self.dataset, tuple(self.classes))


def save_model(path: str | Path, model: torch.nn.Module, arch: str, dataset: str, classes: list[str],
               extra: dict | None = None) -> Path:
    """Write ``{"model": state_dict, "arch", "dataset", "classes", ...}`` atomically (a RepDistiller-style file)
    as plain data (``fkdlib.models.checkpoints.save``), so it loads with ``weights_only=True``."""
    record = {"model": model.state_dict(), "arch": arch, "dataset": dataset, "classes": list(classes), **(extra or {})}
    return _safe.save(record, path)


def load_teacher(path: str | Path, arch: str | None = None, dataset: str | None = None,
                 num_classes: int | None = None, device: torch.device | str = "cpu", trust: bool = False) -> Teacher:
    """Load a frozen teacher from one of our model files or a RepDistiller checkpoint.

    The file is read with ``weights_only=True`` (``fkdlib.models.checkpoints``): one that could run code when
    unpickled is refused, naming it, unless ``trust=True`` says you trust where it came from.

    For a RepDistiller file (``{"model": state_dict, ...}`` only), ``arch`` defaults to what
    RepDistiller's own ``get_teacher_name`` reads from the folder name (``.../resnet32x4_vanilla/ckpt.pth``
    gives ``resnet32x4``), ``dataset`` to ``"cifar100"`` and ``num_classes`` to the classifier's size.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher checkpoint not found: {path}")
    record = _safe.safe_load(path, trust=trust)
    if not isinstance(record, dict) or "model" not in record:
        raise ValueError(f"{path} is not a checkpoint dict with a 'model' entry (got {type(record).__name__})")
    state = record["model"]
    arch = arch or record.get("arch") or _repdistiller_arch(path)
    if num_classes is None:
        num_classes = _classifier_rows(state, path)
    model = create_model(arch, num_classes=num_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ValueError(f"{path} does not fit architecture {arch!r}: {first}") from None
    dataset = dataset or record.get("dataset") or "cifar100"
    classes = record.get("classes") or [str(i) for i in range(num_classes)]
    return Teacher(model.to(device), arch=arch, dataset=dataset, classes=list(classes), source=str(path))


def _repdistiller_arch(path: Path) -> str:
    segments = path.parent.name.split("_")
    return "_".join(segments[:3]) if segments[0] == "wrn" else segments[0]


def _classifier_rows(state: dict, path: Path) -> int:
    weights = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    if not weights:
        raise ValueError(f"{path}: cannot find a linear classifier in the state_dict; pass num_classes")
    return weights[-1].shape[0]
