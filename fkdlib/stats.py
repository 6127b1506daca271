"""Statistics of seeds: a mean with its 95% Student-t interval, paired differences over seeds, and a verdict no
stronger than the interval. The one t table in fkdlib."""
from __future__ import annotations


# two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci95(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t, as the paper reports 5 students).

    One value has no interval: its half-width is NaN.
    """
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("mean_ci95 needs at least one value")
    mean = sum(xs) / n
    if n == 1:
        return mean, float("nan")
    sd = (sum((x - mean) ** 2 for x in xs) / (n - 1)) ** 0.5
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    return mean, t * sd / n ** 0.5


def mean_present(values) -> float:
    """The mean of the values that are not None (NaN when there are none): a metric some runs did not record."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


def paired_ci95(a: dict, b: dict) -> dict:
    """The paired difference ``a - b`` over the seeds both have (``{seed: value}`` each): per-seed
    differences, their mean and the half-width of its 95% Student-t interval, and the count.

    Seed ``s`` gives every method the same initialisation and batch order, so the seed-to-seed spread
    cancels in the difference: this interval is far narrower than comparing two per-method intervals.
    """
    seeds = sorted(set(a) & set(b), key=str)
    if not seeds:
        raise ValueError("paired_ci95 needs at least one seed present in both")
    diffs = [float(a[s]) - float(b[s]) for s in seeds]
    mean, ci = mean_ci95(diffs)
    return {"mean": mean, "ci95": ci, "n": len(diffs), "diffs": diffs, "seeds": list(seeds)}


def bounds(diffs: dict) -> tuple[dict, dict]:
    """``(lo, hi)``: the ends of each named ``paired_ci95`` interval, ``{name: lower}`` and ``{name: upper}``."""
    return ({k: d["mean"] - d["ci95"] for k, d in diffs.items()}, {k: d["mean"] + d["ci95"] for k, d in diffs.items()})


def side(diff: dict) -> str:
    """Where a ``paired_ci95`` interval lies: ``"above 0"``, ``"below 0"``, ``"containing 0"`` (or ``"one seed"``)."""
    lo, hi = diff["mean"] - diff["ci95"], diff["mean"] + diff["ci95"]
    return "one seed" if diff["n"] < 2 else "above 0" if lo > 0 else "below 0" if hi < 0 else "containing 0"


def verdict(diff: dict, what: str) -> str:
    """One sentence on a ``paired_ci95`` result, no stronger than its interval: above, below or no difference shown."""
    lo, hi = diff["mean"] - diff["ci95"], diff["mean"] + diff["ci95"]
    call = {"one seed": "one seed: no interval", "above 0": "better: the interval is above 0",
            "below 0": "worse: the interval is below 0",
            "containing 0": "no difference shown: the interval contains 0"}[side(diff)]
    return f"{what}: {diff['mean']:+.2f} points [{lo:+.2f}, {hi:+.2f}] over {diff['n']} paired seeds ({call})"
