"""A notebook's claims ("Check:" cells): asserted at the parameters the notebook ships with; after a reader changes
them (an exercise), reported instead, so an exercise shows what happens rather than stopping the notebook.

A claim about a committed run's own numbers (a new run retraces it to the last digit; what its seeds happened to
show) holds only in that run's setting, its data, device and torch as its record names them: elsewhere (torchvision's
CIFAR-10 rather than our JPEG copy, a GPU, a Mac, another CPU model) the same seeds train other networks, and the
claim is reported too, with the reason (``setting_differs``)."""
from __future__ import annotations


def at_defaults(**params: tuple) -> bool:
    """Whether every knob still has its shipped value: ``at_defaults(LAM_KD=(LAM_KD, 30.0), E=(E, 4))``."""
    return all(value == default for value, default in params.values())


def setting_differs(committed: dict, here: dict) -> str | None:
    """None where this run's setting (``fkdlib.records.setting_here``, or ``setting`` of its record) is the committed
    run's (``records.setting`` of that run's record): the same data, device and torch. Elsewhere the reason a claim
    about the committed run's own numbers is reported rather than asserted, naming what differs, for ``check``."""
    differ = [key for key in committed if committed[key] != here.get(key)]
    if not differ:
        return None
    return ("asserted only in the committed run's setting; "
            + "; ".join(f"{key}: {committed[key]} there, {here.get(key)} here" for key in differ))


def check(holds: bool, claim: str, defaults: bool = True, differs: str | None = None) -> None:
    """Assert ``claim`` where the notebook's defaults are in force and, for a claim about a committed run, this run
    is in that run's setting (``differs`` is None: see ``setting_differs``); elsewhere print whether it held and why
    it is not asserted (nothing is returned, so a cell that ends with a check shows nothing more)."""
    if defaults and differs is None:
        assert holds, f"the notebook's claim does not hold: {claim}"
    elif not defaults:
        print(f"{claim}: {'holds' if holds else 'does not hold'} with your settings (asserted only at the defaults)")
    else:
        print(f"{claim}: {'holds' if holds else 'does not hold'} here ({differs})")
