"""notebooks/nbval_sanitize.cfg: what strict nbval blanks before it compares a smoke run with the committed lite outputs."""
import re

from nbval.plugin import get_sanitize_patterns

from fkdlib.paths import REPO_ROOT

PATTERNS = get_sanitize_patterns((REPO_ROOT / "notebooks" / "nbval_sanitize.cfg").read_text(encoding="utf-8"))


def sanitize(text: str) -> str:
    for regex, replace in PATTERNS:   # as nbval applies them: in the file's order
        text = re.sub(regex, replace, text)
    return text


def test_every_rule_is_read_and_compiles():
    assert len(PATTERNS) >= 8
    for regex, _ in PATTERNS:
        re.compile(regex)


def test_a_lite_output_and_a_smoke_output_of_the_same_cell_compare_equal():
    lite = ("device: cpu | scale: lite | {'n_pool': 3000, 'E': [1, 2, 4, 8], 'lams': [3.0, 300.0]}\n"
            "E=1    single-view 0.667 ± 0.067 | diverged: 0 of 6\n"
            "E=8    single-view 0.926 ± 0.017 | diverged: 0 of 6\n")
    smoke = ("device: cuda | scale: smoke | {'n_pool': 400, 'E': [1, 2], 'lams': [30.0]}\n"
             "E=1    single-view nan ± 0.381 | diverged: 1 of 2\n")
    assert sanitize(lite) == sanitize(smoke)
    assert sanitize("<Figure size 396.667x465 with 1 Axes>") == sanitize("<Figure size 1000x360 with 2 Axes>")
    assert sanitize("50,000 images in 12.5 s, lr 1e-3, delta -0.77") == sanitize("64 images in 0 s, lr 0.1, delta +5.92")


def test_words_still_count():
    """Blanking numbers must leave the text compared: a changed message or a new line still fails."""
    assert sanitize("teacher resnet20: test accuracy 57.1%\n") != sanitize("student resnet8: test accuracy 57.1%\n")
    assert sanitize("a 1\n") != sanitize("a 1\nb 2\n")
    assert sanitize("cross-entropy 2.30 -> 0.005") == "cross-entropy N -> N"
