"""``python -m fkdlib ...``: see ``fkdlib.cli``."""
import sys

from .cli import main

sys.exit(main())
