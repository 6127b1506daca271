"""fkdlib.stats against hand-computed cases: Student-t quantiles, the paired t-test and Holm's step-down correction."""
import pytest

from fkdlib.stats import family, holm, mean_ci95, paired_ci95, paired_p, t975


def test_t_quantiles_are_students():
    # printed tables: t(0.975; 1) = 12.706, t(0.975; 4) = 2.776, t(0.975; 30) = 2.042; large df tends to 1.960
    assert [round(t975(df), 3) for df in (1, 4, 30)] == [12.706, 2.776, 2.042]
    assert t975(10_000) == pytest.approx(1.960, abs=1e-3)
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert (mean, half) == pytest.approx((2.0, t975(2) / 3 ** 0.5))


def test_paired_t_p_value_by_hand():
    # differences 1, 2, 3: t = 2 / (1 / sqrt 3) = sqrt 12 on 2 df, whose CDF is 1/2 + t / (2 sqrt(t^2 + 2)):
    # p = 2 (1/2 - sqrt 12 / (2 sqrt 14)) = 1 - sqrt(12 / 14)
    diff = paired_ci95({0: 1.0, 1: 2.0, 2: 3.0}, {0: 0.0, 1: 0.0, 2: 0.0})
    assert paired_p(diff) == pytest.approx(1 - (12 / 14) ** 0.5, rel=1e-9)
    assert paired_p(paired_ci95({0: 1.0, 1: 1.0}, {0: 0.0, 1: 0.0})) == 0.0
    assert paired_p(paired_ci95({0: 1.0, 1: 1.0}, {0: 1.0, 1: 1.0})) == 1.0


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> made monotone: 0.02, 0.03, 0.06, 0.06
    out = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005}, alpha=0.05)
    assert {k: v["p_holm"] for k, v in out.items()} == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06, "d": 0.02})
    assert {k for k, v in out.items() if v["reject"]} == {"a", "d"}
    assert list(out) == ["a", "b", "c", "d"]  # the family's own order
    # capped at 1; a family of one is not corrected
    assert holm({"a": 0.6, "b": 0.7})["b"]["p_holm"] == 1.0
    assert holm({"a": 0.04})["a"] == {"p": 0.04, "p_holm": 0.04, "reject": True}


def test_family_verdicts_are_no_stronger_than_holm():
    up = paired_ci95({s: 1.0 + 0.1 * s for s in range(5)}, {s: 0.0 for s in range(5)})      # clearly above 0
    weak = paired_ci95({0: 0.9, 1: -0.2, 2: 1.1, 3: 0.3, 4: 0.5}, {s: 0.0 for s in range(5)})  # p about 0.07
    down = paired_ci95({s: -2.0 - 0.2 * s for s in range(5)}, {s: 0.0 for s in range(5)})
    out = family({"up": up, "weak": weak, "down": down})
    assert [out[k]["holm"] for k in ("up", "weak", "down")] == ["above 0", "not shown", "below 0"]
    assert all(out[k]["p_holm"] >= out[k]["p"] for k in out)
    one = family({"one": paired_ci95({0: 5.0}, {0: 0.0})})
    assert one["one"]["holm"] == "not shown"
