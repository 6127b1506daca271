"""Model files that cannot run code: the one place they are written and read.

A ``.pt``/``.pth`` file is a pickle, and unpickling can call any function the file names: a teacher
checkpoint from a stranger could run their code on your machine. So every model file, teacher checkpoint
and resume checkpoint goes through ``safe_load``, which reads with ``torch.load(weights_only=True)``:
tensors, numbers, strings, lists, tuples, dicts and nothing that runs code.

- ``save`` writes what it is given as exactly such plain data (``plain`` converts, and refuses the rest),
  atomically, so every file fkdlib writes loads safely.
- A few harmless types that other files hold are allowed by name (``ALLOWED``): numpy scalars and their
  dtypes (RepDistiller-style checkpoints may hold ``np.float64`` accuracies) and ``torch.torch_version``,
  which fkdlib 0.1 model files hold in their provenance.
- A file that needs more is refused in one line that names it; ``trust=True`` (``--trust-checkpoint`` on
  the command line) loads it the unsafe way, for a file you trust. ``resave`` (``python -m fkdlib resave
  PATH...``) rewrites a file as plain data once, checking its tensors come back bit-identical.

Run records and shared results are JSON (``fkdlib.records``), which never runs code.
"""
from __future__ import annotations

import numbers
import os
import pickle
import re
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.torch_version

__all__ = ["safe_load", "save", "plain", "resave", "UnsafeCheckpointError", "CorruptCheckpointError", "ALLOWED"]

_OPT_IN = "--trust-checkpoint on the command line, trust=True in Python"


def _numpy_allowlist() -> list:
    try:
        from numpy._core.multiarray import scalar  # numpy 2.x
    except ImportError:
        from numpy.core.multiarray import scalar  # numpy 1.x
    # a pickled numpy scalar names numpy.core... (written under numpy 1.x) or numpy._core... (2.x), then
    # np.dtype, whose state is set on an instance of its DType class (numpy >= 1.25): number and bool ones only
    number_dtypes = sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"}, key=lambda t: t.__name__)
    return [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype,
            *number_dtypes]


ALLOWED = [*_numpy_allowlist(), torch.torch_version.TorchVersion]
"""What a file may name beyond torch's own tensors: numpy number/bool scalars and dtypes, torch's version string."""


class UnsafeCheckpointError(ValueError):
    """A file that would need to run code to load; nothing in it was run."""


class CorruptCheckpointError(ValueError):
    """A file that is truncated, corrupted or not a torch file at all."""


def safe_load(path: str | Path, trust: bool = False, map_location: str | torch.device = "cpu"):
    """Read a model file, teacher or resume checkpoint with ``weights_only=True`` (plus ``ALLOWED``).

    ``trust=True`` loads a file that needs more with ``weights_only=False``: only for a file you trust, as
    unpickling it can run any code it names. Raises ``FileNotFoundError``, ``UnsafeCheckpointError`` (one
    line naming the file, what it would call and the opt-in) or ``CorruptCheckpointError``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        if trust:
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(ALLOWED):
            return torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError:
        raise
    except Exception as err:  # noqa: BLE001 - torch reports a bad file with many types (OSError 22 for a cut zip)
        needs = [] if trust else _needs(path, err)
        if needs:
            raise UnsafeCheckpointError(
                f"{path} could run code when loaded (it needs {', '.join(needs)}), so it was not loaded; if you "
                f"trust where it came from, opt in with {_OPT_IN} (or re-save it once: "
                f"python -m fkdlib resave {path} --trust-checkpoint)") from None
        reason = "empty file" if path.stat().st_size == 0 else _reason(err)
        raise CorruptCheckpointError(f"{path} is truncated or corrupted ({reason}); copy or download it "
                                     f"again, or re-create it") from None


def _needs(path: Path, err: Exception) -> list[str]:
    """The globals a refused file names beyond the allowlist: read statically, never unpickled."""
    if not isinstance(err, pickle.UnpicklingError):
        return []
    try:
        with torch.serialization.safe_globals(ALLOWED):
            found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - an old-format (non-zip) file: read the unpickler's own words instead
        found = []
    if not found:
        patterns = (r"GLOBAL (\S+) was not an allowed global", r"whose module (\S+) is blocked",
                    r"but got <class '([^']+)'>", r"(\S+) must be \S+ to load")
        found = [m for p in patterns for m in re.findall(p, str(err))]
    return sorted(set(found))


def _reason(err: Exception) -> str:
    """torch's many-line message about an unreadable file, cut to its first sentence."""
    text = str(err).split("WeightsUnpickler error:")[-1]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = first.split(". ")[0].removeprefix("PytorchStreamReader failed reading zip archive: ")[:100]
    if len(first) >= 8:
        return first
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def plain(obj, where: str = "value"):
    """``obj`` as data ``weights_only`` loads: tensors, torch dtypes/devices, bool/int/float/str/bytes/None,
    and lists, tuples, sets and dicts of them. Subclasses of numbers and strings (numpy scalars,
    ``torch.__version__``) become the built-in type; anything else is a ``TypeError`` naming where it is.
    A container that needs no change is returned as is (a state_dict keeps its ``_metadata``)."""
    if obj is None or isinstance(obj, (torch.Tensor, torch.dtype, torch.device, torch.Size)):
        return obj
    if type(obj) in (bool, int, float, complex, str, bytes):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, numbers.Complex):
        return complex(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, dict):
        items = [(plain(k, f"{where} key"), plain(v, f"{where}[{k!r}]")) for k, v in obj.items()]
        if type(obj) in (dict, OrderedDict, Counter) and all(a is k and b is v for (a, b), (k, v)
                                                            in zip(items, obj.items())):
            return obj
        kind = Counter if isinstance(obj, Counter) else OrderedDict if isinstance(obj, OrderedDict) else dict
        return kind(dict(items))
    if isinstance(obj, (list, tuple, set, frozenset)):
        values = [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        kind = set if isinstance(obj, (set, frozenset)) else list if isinstance(obj, list) else tuple
        if type(obj) is kind and all(a is b for a, b in zip(values, obj)):
            return obj
        return kind(values)
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which a model file cannot "
                    f"hold safely; store it as tensors, numbers, strings, lists or dicts")


def save(obj, path: str | Path) -> Path:
    """Write ``plain(obj)`` to ``path`` atomically (a ``.tmp`` file renamed over it, never a half-written file)."""
    path = Path(path)
    record = plain(obj, path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    torch.save(record, tmp)
    os.replace(tmp, path)
    return path


def resave(path: str | Path, trust: bool = False) -> str:
    """Rewrite a model file as plain data, so it loads with a bare ``torch.load(weights_only=True)``.

    A file that already does is left untouched. The rewritten file is read back and every tensor compared
    with the original, bit for bit. Returns what was done, in words.
    """
    path = Path(path)
    try:
        torch.load(path, map_location="cpu", weights_only=True)
        return f"{path}: already plain data, left as it is"
    except Exception:  # noqa: BLE001 - whatever stops a bare load, safe_load below names it
        pass
    before = safe_load(path, trust=trust)
    try:
        save(before, path)
    except TypeError as err:
        raise ValueError(f"{path} cannot be re-saved as plain data: {err}") from None
    after = torch.load(path, map_location="cpu", weights_only=True)
    if not _same_tensors(before, after):
        raise RuntimeError(f"{path}: re-saved tensors differ from the original; restore it from a copy")
    return f"{path}: re-saved as plain data (tensors bit-identical)"


def _same_tensors(a, b) -> bool:
    """``a`` and ``b`` hold the same values, every tensor bit for bit (NaNs included)."""
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
                and torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same_tensors, a, b))
    return a == b or (a != a and b != b)  # NaN == NaN here
