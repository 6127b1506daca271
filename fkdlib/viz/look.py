"""How every figure colours a method or a variant (seaborn's colorblind palette; FKD the strongest). Their names
are the methods' own (``fkdlib.distill.methods.label``), which the README's tables read too."""
from __future__ import annotations

COLORS = {"none": "#949494", "kd": "#de8f05", "rkd": "#029e73", "sp": "#56b4e9", "fkd-nofr": "#cc78bc",
          "fkd": "#0173b2", "fr": "#ca9161", "crd": "#fbafe4", "fkd-unlabelled": "#7f3c8d", "fkd-concat": "#d55e00"}


def color(key: str) -> str:
    """The method's colour in every figure (grey for a key no method owns): ``"fkd E=4"`` is FKD's."""
    return COLORS.get(key.partition(" ")[0], "0.3")
