"""Machine-readable licences: SPDX expressions (canonical spelling, unknown identifiers refused) or a licence text's
URI with its SHA-256, checked at publish, on the command line and at registration; any other text is a typed
error, never a bare ValueError."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from dataclasses import replace

import pytest
from conftest import env_without_pythonpath, sample_table
from hypothesis import given
from hypothesis import strategies as st

from deai_data import License, Manifest, license_reference, parse_license, publish
from deai_data.errors import FormatError, MarketError, PublishError

TEXT = b"You may use these records for research only.\n"
URI = "https://example.org/licences/research-only-v1.txt"


def test_spdx_expressions_are_canonical_and_unknown_ones_refused():
    assert parse_license("cc-by-4.0") == License(spdx="CC-BY-4.0")
    assert str(parse_license("mit or apache-2.0")) == "MIT OR Apache-2.0"
    assert str(parse_license("LicenseRef-Internal-1")) == "LicenseRef-Internal-1"
    for bad in ("CC-BY4.0", "free for research", "MIT AND", "(MIT"):
        with pytest.raises(FormatError, match="not an SPDX licence expression"):
            parse_license(bad)


def test_a_licence_text_is_named_by_its_uri_and_sha256():
    reference = license_reference(URI, TEXT)
    assert reference == f"{URI}#sha256={hashlib.sha256(TEXT).hexdigest()}"
    parsed = parse_license(reference)
    assert parsed.uri == URI and parsed.matches(TEXT) and not parsed.matches(TEXT + b" and for profit")
    assert not parse_license("MIT").matches(TEXT)
    for bad in (URI, "file:///etc/passwd#sha256=" + "0" * 64, URI + "#sha256=" + "A" * 64):
        with pytest.raises(FormatError, match=r"is not an http\(s\)://, ar:// or ipfs:// URI followed by #sha256="):
            parse_license(bad)


@given(st.text(max_size=2000))
def test_any_text_is_a_licence_or_a_format_error(text):
    with contextlib.suppress(FormatError):
        assert str(parse_license(text))


def test_publish_records_the_canonical_licence_and_refuses_free_text(tmp_path):
    result = publish(sample_table(20), store=tmp_path / "s", name="l", license="cc0-1.0", keystore=False,
                     key=bytes(32))
    assert result.manifest.license == "CC0-1.0"
    with pytest.raises(PublishError, match="license: 'all rights reserved' is not an SPDX") as caught:
        publish(sample_table(20), store=tmp_path / "s2", name="l", license="all rights reserved", keystore=False,
                key=bytes(32))
    assert "spdx.org" in caught.value.hint
    # a manifest published before licences were checked still reads
    earlier = replace(result.manifest, license="free for all").to_bytes()
    assert Manifest.from_bytes(earlier).license == "free for all"


def test_cli_publishes_a_licence_text_by_its_hash(tmp_path):
    (tmp_path / "rows").mkdir()
    (tmp_path / "rows" / "a.bin").write_bytes(b"x" * 100)
    (tmp_path / "LICENSE.txt").write_bytes(TEXT)
    env = {**env_without_pythonpath(), "DEAI_KEYSTORE_PASSWORD": "pw"}
    cli = [sys.executable, "-m", "deai_data.cli.main", "publish", str(tmp_path / "rows"), "--json"]
    done = subprocess.run([*cli, "--store", str(tmp_path / "s"), "--license", URI, "--license-text",
                           str(tmp_path / "LICENSE.txt")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = subprocess.run([sys.executable, "-m", "deai_data.cli.main", "inspect", json.loads(done.stdout)
                            ["manifest_uri"], "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert json.loads(shown.stdout)["license"] == license_reference(URI, TEXT)
    for args, code, said in ((["--license", "MIT", "--license-text", str(tmp_path / "LICENSE.txt")], 2,
                              "needs --license URI"),
                             (["--license", URI, "--license-text", str(tmp_path / "missing.txt")], 2,
                              "cannot read the licence text"),
                             (["--license", "my own terms"], 10, "not an SPDX licence expression")):
        refused = subprocess.run([*cli, "--store", str(tmp_path / "s3"), *args], env=env, capture_output=True,
                                 text=True, timeout=120)
        assert refused.returncode == code and said in refused.stderr, refused.stderr


def test_registration_records_only_a_machine_readable_licence(tmp_path):
    from deai_data.chain import connect, dev_accounts
    from deai_data.market import Market
    w3 = connect()
    owner = dev_accounts(w3)[1]
    market = Market(w3, Market.deploy(w3, owner).address, owner)
    published = publish(sample_table(20), store=tmp_path / "s", name="l", license="MIT", keystore=False,
                        key=bytes(32), author=owner)
    registration, _ = market.registration(published, price=1, license_uri="apache-2.0")
    assert registration["licenseURI"] == "Apache-2.0"
    assert market.registration(published, price=1)[0]["licenseURI"] == "MIT"  # the manifest's, by default
    with pytest.raises(MarketError, match="license_uri: 'see our website' is not an SPDX"):
        market.registration(published, price=1, license_uri="see our website")
