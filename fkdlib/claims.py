"""A notebook's claims ("Check:" cells): asserted at the parameters the notebook ships with; after a reader changes
them (an exercise), reported instead, so an exercise shows what happens rather than stopping the notebook."""
from __future__ import annotations


def at_defaults(**params: tuple) -> bool:
    """Whether every knob still has its shipped value: ``at_defaults(LAM_KD=(LAM_KD, 30.0), E=(E, 4))``."""
    return all(value == default for value, default in params.values())


def check(holds: bool, claim: str, defaults: bool = True) -> None:
    """Assert ``claim`` where the notebook's defaults are in force; elsewhere print whether it held (nothing is
    returned, so a cell that ends with a check shows nothing more)."""
    if defaults:
        assert holds, f"the notebook's claim does not hold: {claim}"
    else:
        print(f"{claim}: {'holds' if holds else 'does not hold'} with your settings (asserted only at the defaults)")
