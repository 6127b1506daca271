"""fkdlib: the thin library behind the FKD teaching notebooks, in the order the data flows.

    data/         datasets as uint8 tensors (real on-disk formats, clear offline errors), the device-resident loader
    models/       RepDistiller's CIFAR zoo under its own names; teachers and model files read safely
    distill/      feature kernels and alignment, the losses (FKD, KD, RKD, SP), the methods and their rules
    engine/       the one trainer (teachers, students, resume, NaN stop, run records), evaluation, precision
    theory/       the multi-view simulation of docs/paper.md §2 and its experiment
    experiments/  sizes per scale, the grid runner, one module per paper experiment, the README report
    viz/          one style, one savefig, the figures, notebook 01's kernel explorer
    records.py    run records with provenance: the engine writes them, experiments and the report read them
    stats.py      means with 95% intervals, paired differences over seeds, verdicts
    claims.py     a notebook's "Check:" cells: asserted at its defaults (a claim about a committed run's numbers:
                  only in that run's setting, its data, device and torch), reported elsewhere
    paths.py, device.py   where files live; CUDA, then MPS, then CPU
    cli.py        python -m fkdlib ...

Imports run one way, each layer importing only its own and those below (tests/test_layering.py): cli -> viz ->
experiments -> theory -> engine -> records -> data, models, distill -> paths, device, stats, claims.
``fkdlib.kernels`` and ``fkdlib.losses`` are ``fkdlib.distill.kernels`` and ``.losses``.
"""
__version__ = "0.1.0"
