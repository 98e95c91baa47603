"""The FIX sessions' TLS settings: each LP's CA file (`TM_FIX_LP_CA`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.platform.fix import ClientTls
from services.platform.fix import parse_lp_ca


def test_each_lp_names_its_ca_file() -> None:
    assert parse_lp_ca(" lp-alpha=/etc/a/ca.pem , lp-beta = /etc/b/ca.pem,") == {
        "lp-alpha": Path("/etc/a/ca.pem"),
        "lp-beta": Path("/etc/b/ca.pem"),
    }
    assert parse_lp_ca("") == {}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("lp-alpha", "want <lp>=<path of a CA file>"),
        ("=/etc/ca.pem", "want <lp>=<path of a CA file>"),
        ("lp-alpha=", "want <lp>=<path of a CA file>"),
        ("lp-alpha=/a.pem,lp-alpha=/b.pem", "lp-alpha is named twice"),
    ],
)
def test_a_bad_lp_ca_setting_is_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_lp_ca(text)


def test_an_lp_without_a_ca_or_with_a_missing_file_cannot_start(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    tls = ClientTls({"lp-alpha": ca, "lp-beta": tmp_path / "nowhere.pem"}, certificate=None)  # type: ignore[arg-type]
    assert tls.ca_of("lp-alpha") == ca
    with pytest.raises(ValueError, match="TM_FIX_LP_CA names no CA for LP lp-gamma"):
        tls.ca_of("lp-gamma")
    with pytest.raises(ValueError, match=r"the CA file of LP lp-beta, .*nowhere\.pem, is missing"):
        tls.ca_of("lp-beta")
