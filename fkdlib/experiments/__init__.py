"""The paper's experiments at three scales: sizes, the grid runner, one module per experiment, the README report."""
from .catalog import EXPERIMENTS, cross_dataset, ensemble_size, experiment_dir, fkd_in_practice, method_comparison

__all__ = ["EXPERIMENTS", "cross_dataset", "ensemble_size", "experiment_dir", "fkd_in_practice", "method_comparison"]
