"""``fkdlib.kernels`` is ``fkdlib.distill.kernels`` (the name users import); this file only points there."""
import sys

from .distill import kernels

sys.modules[__name__] = kernels
