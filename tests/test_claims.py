import pytest

from fkdlib import claims


def test_a_claim_is_asserted_at_the_defaults_and_only_reported_elsewhere(capsys):
    assert claims.at_defaults(LAM=(30.0, 30.0), E=(4, 4))
    assert not claims.at_defaults(LAM=(0.0, 30.0), E=(4, 4))
    with pytest.raises(AssertionError, match="FKD beats plain"):
        claims.check(False, "FKD beats plain", defaults=True)
    claims.check(False, "FKD beats plain", defaults=False)
    assert "does not hold with your settings" in capsys.readouterr().out
    claims.check(True, "FKD beats plain")
    assert capsys.readouterr().out == ""
