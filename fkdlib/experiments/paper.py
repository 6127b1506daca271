"""The paper's published numbers (He & Ozay 2022), copied from docs/paper.md, for display beside ours only.

These are references, never results of this repository: every plot or table that shows them labels
them as the paper's, and our own numbers come from results/.
"""

# §3.1, CIFAR-100 top-1 accuracy (%). Rows marked * were copied by the paper from Tian et al. (CRD).
# FKD rows: mean of 5 students, +/- a 95% confidence interval.
METHOD_COMPARISON = {
    "pairs": ["resnet32x4 -> resnet8x4", "vgg13 -> vgg8", "resnet32x4 -> ShuffleV1", "ResNet50 -> vgg8"],
    "rows": {
        "teacher*": [79.42, 74.64, 79.42, 79.34],
        "none*": [72.50, 70.36, 70.50, 70.36],
        "kd*": [73.33, 72.98, 74.07, 73.81],
        "rkd*": [71.90, 71.48, 72.28, 71.50],
        "sp*": [72.94, 72.68, 73.48, 73.34],
        "crd*": [75.51, 73.94, 75.11, 74.30],
        "fkd-nofr": [74.89, 73.08, 74.66, 73.99],
        "fkd": [75.57, 73.78, 75.00, 74.61],
    },
    "ci95": {"fkd-nofr": [0.24, 0.16, 0.23, 0.15], "fkd": [0.22, 0.17, 0.30, 0.28]},
}

# §3.2, VGG8 everywhere on CIFAR-100, mean of 10 runs; values read off the paper's plot (about +/- 0.05).
ENSEMBLE_SIZE = {
    "E": [1, 2, 4, 8],
    "kd": [71.64, 72.68, 73.16, 73.39],
    "fkd": [72.19, 73.08, 73.38, 73.61],
    "teacher_ensemble": [70.55, 73.1, 74.85, 75.82],
    "none": 70.56,
}
