"""Statistics of seeds: a mean with its 95% Student-t interval, paired differences over seeds, a verdict no
stronger than the interval, and Holm's correction over a family of paired contrasts fixed in advance.
Student's t comes from ``scipy.stats``."""
from __future__ import annotations

import math

from scipy import stats as _scipy


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (the half-width factor of a 95% interval)."""
    return float(_scipy.t.ppf(0.975, df))


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
    return mean, t975(n - 1) * sd / n ** 0.5


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


def interval(result: dict) -> tuple[float, float]:
    """The ends of the 95% interval of a ``mean_ci95`` row or ``paired_ci95`` result (``mean`` ± ``ci95``); NaN where
    it has none (one seed: a half-width NaN, or None in a summary read back from its JSON file)."""
    half = float("nan") if result["ci95"] is None else result["ci95"]
    return result["mean"] - half, result["mean"] + half


def bounds(diffs: dict) -> tuple[dict, dict]:
    """``(lo, hi)``: the ends of each named ``paired_ci95`` interval, ``{name: lower}`` and ``{name: upper}``."""
    ends = {k: interval(d) for k, d in diffs.items()}
    return {k: lo for k, (lo, _) in ends.items()}, {k: hi for k, (_, hi) in ends.items()}


def side(diff: dict) -> str:
    """Where a ``paired_ci95`` interval lies: ``"above 0"``, ``"below 0"``, ``"containing 0"`` (or ``"one seed"``)."""
    lo, hi = interval(diff)
    return "one seed" if diff["n"] < 2 else "above 0" if lo > 0 else "below 0" if hi < 0 else "containing 0"


def verdict(diff: dict, what: str) -> str:
    """One sentence on a ``paired_ci95`` result, no stronger than its interval: above, below or no difference shown."""
    lo, hi = interval(diff)
    call = {"one seed": "one seed: no interval", "above 0": "better: the interval is above 0",
            "below 0": "worse: the interval is below 0",
            "containing 0": "no difference shown: the interval contains 0"}[side(diff)]
    return f"{what}: {diff['mean']:+.2f} points [{lo:+.2f}, {hi:+.2f}] over {diff['n']} paired seeds ({call})"


def paired_p(diff: dict) -> float:
    """The two-sided p-value of a paired t-test of a ``paired_ci95`` result (H0: the mean difference is 0); NaN for
    one seed. Every difference equal and non-zero gives 0; every difference 0 gives 1."""
    diffs, n = diff["diffs"], diff["n"]
    if n < 2:
        return float("nan")
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd == 0:
        return 1.0 if mean == 0 else 0.0
    return float(2 * _scipy.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))


def holm(pvalues: dict, alpha: float = 0.05) -> dict:
    """Holm's step-down correction over a family ``{name: p}``: ``{name: {"p", "p_holm", "reject"}}``.

    Sorted ascending, the i-th smallest of m p-values is multiplied by m - i + 1 (i from 1), made non-decreasing
    and capped at 1; a hypothesis is rejected where its adjusted value is at most ``alpha``. It controls the
    family-wise error rate at ``alpha`` under any dependence between the contrasts.
    """
    order = sorted(pvalues, key=lambda k: pvalues[k])
    m, running, out = len(order), 0.0, {}
    for i, name in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[name]))
        out[name] = {"p": pvalues[name], "p_holm": running, "reject": running <= alpha}
    return {name: out[name] for name in pvalues}


def family(diffs: dict, alpha: float = 0.05) -> dict:
    """The registered family's verdicts: per contrast its ``paired_ci95`` result with its paired-t p-value, Holm's
    adjusted p-value over the whole family and a verdict (``"above 0"``, ``"below 0"`` or ``"not shown"``)."""
    p = {k: paired_p(d) for k, d in diffs.items()}
    adjusted = holm({k: 1.0 if math.isnan(v) else v for k, v in p.items()}, alpha)  # one seed: nothing rejected
    return {k: {**d, **adjusted[k], "alpha": alpha,
                "holm": ("above 0" if d["mean"] > 0 else "below 0") if adjusted[k]["reject"] else "not shown"}
            for k, d in diffs.items()}
