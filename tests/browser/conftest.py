"""The browser tests' fixtures (labdriver.py): the JupyterLab server, a page, the screenshots folder."""
from labdriver import lab, page, screenshots_dir  # noqa: F401  (fixtures)
