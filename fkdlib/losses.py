"""``fkdlib.losses`` is ``fkdlib.distill.losses`` (the name users import); this file only points there."""
import sys

from .distill import losses

sys.modules[__name__] = losses
