"""What every command of `deai-data` and `deai-indexer` promises (docs/cli.md): a description and `--help`,
`--json` for machines, documented exit codes, progress on a terminal only, and never a key in the output."""

from __future__ import annotations

import argparse
import base64
import json
import os
import pty
import re
import subprocess

import pytest
from conftest import REPO
from test_cli import CLI, cli, folder, published  # noqa: F401 (fixtures)

from deai_data import DeaiError, Keystore
from deai_data.cli.main import build_parser
from deai_data.crypto.keystore import DATA_KEY
from deai_indexer.cli import build_parser as build_indexer_parser


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from leaves(child, (*path, name))


def test_every_command_has_a_description_help_and_json():
    commands = [(("deai-data", *p), c) for p, c in leaves(build_parser())]
    commands += [(("deai-indexer", *p), c) for p, c in leaves(build_indexer_parser())]
    assert len(commands) > 30
    for path, parser in commands:
        options = {o for action in parser._actions for o in action.option_strings}
        assert parser.description, f"{' '.join(path)} has no description"
        assert "--help" in options and "--json" in options, f"{' '.join(path)}: {sorted(options)}"
        assert parser.format_help().startswith("usage: ")


def subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= subclasses(sub)
    return found


def test_exit_codes_are_documented():
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", (REPO / "docs" / "cli.md").read_text(), re.M))
    from deai_data.cli.entry import INTERNAL_ERROR
    used = {cls.exit_code for cls in subclasses(DeaiError)} | {DeaiError.exit_code, INTERNAL_ERROR}
    assert used <= {int(code) for code in table}, f"undocumented: {used - {int(c) for c in table}}"
    assert {int(code) for code in table} - used <= {0, 2, 130}, "documented codes nothing returns"


def test_a_bug_or_memory_exhaustion_is_one_line_not_a_traceback(monkeypatch, capsys):
    import argparse

    from deai_data.cli.entry import INTERNAL_ERROR, run_command

    def boom(kind):
        def call(_):
            raise kind("something")
        return call

    assert run_command(argparse.Namespace(func=boom(MemoryError))) == 15
    assert run_command(argparse.Namespace(func=boom(KeyError))) == INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "out of memory" in err and "internal error: KeyError" in err and "Traceback" not in err


@pytest.mark.slow
def test_no_command_prints_a_key(published, tmp_path):  # noqa: F811
    key = Keystore().get(DATA_KEY, published["manifest_hash"])
    forms = {key.hex(), key.hex().upper(), base64.b64encode(key).decode().rstrip("="),
             base64.urlsafe_b64encode(key).decode().rstrip("=")}
    uri = published["manifest_uri"]
    wallet = json.loads(cli("arweave", "wallet", "new", "--name", "w", "--json").stdout)
    wallet_key = Keystore().get("arweave-wallet", "w")
    runs = [cli(*args) for args in (
        ("inspect", uri), ("inspect", uri, "--json"), ("verify", uri), ("verify", uri, "--json"),
        ("keys", "list"), ("keys", "list", "--json"), ("get", uri, "--out", str(tmp_path / "out"), "--json"),
        ("arweave", "wallet", "new", "--name", "w2"))]
    runs.append(cli("keys", "export", published["manifest_hash"], "--out", str(tmp_path / "k.json"),
                    env=dict(os.environ, DEAI_EXPORT_PASSWORD="export pw")))
    output = "".join(r.stdout + r.stderr for r in runs) + json.dumps(wallet)
    assert not [form for form in forms if form in output]
    assert json.loads(wallet_key)["d"] not in output  # the wallet's private exponent
    assert not [form for form in forms if form in (tmp_path / "k.json").read_text()]  # exported encrypted


def test_progress_on_a_terminal_only(published, tmp_path):  # noqa: F811
    uri = published["manifest_uri"]
    piped = subprocess.run([CLI, "verify", uri], capture_output=True, text=True, timeout=60, check=True)
    assert "verifying:" not in piped.stderr
    main, follower = pty.openpty()
    try:
        proc = subprocess.run([CLI, "verify", uri], stdout=subprocess.PIPE, stderr=follower, timeout=60, check=True)
        os.close(follower)
        follower = -1
        drawn = b""
        while chunk := _read(main):
            drawn += chunk
    finally:
        os.close(main)
        if follower >= 0:
            os.close(follower)
    assert f"verifying: {published['shards']}/{published['shards']} shards".encode() in drawn
    assert b"verifying:" not in proc.stdout  # the result stays clean for pipes


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO once the terminal's other side is closed
        return b""


def test_what_a_newcomer_mistypes_is_a_usage_error_that_says_what_to_pass(published):  # noqa: F811
    uri, manifest_hash = published["manifest_uri"], published["manifest_hash"]
    bad_hash = cli("inspect", uri, "--manifest-hash", "xyz", check=2)
    assert "not a manifest hash" in bad_hash.stderr
    bare = cli("inspect", manifest_hash, check=2)  # as `keys list` prints it
    assert f"objects/sha256/{manifest_hash[:2]}/{manifest_hash}" in bare.stderr
    assert "not KEY=VALUE" in cli("publish", ".", "--store", ".", "--meta", "foo", check=2).stderr
    assert "Traceback" not in bad_hash.stderr + bare.stderr


def test_an_unreachable_node_is_named_in_a_few_words():
    from chains import free_port  # a port nothing listens on

    url = f"http://127.0.0.1:{free_port()}"
    proc = cli("market", "show", "1", "--rpc", url, "--market", "0x" + "11" * 20, check=11)
    assert f"no JSON-RPC endpoint answers at {url}: connection refused" in proc.stderr
    assert "Pool" not in proc.stderr and "Errno" not in proc.stderr


def test_help_lists_exit_codes_and_offers_only_options_that_act():
    top = build_parser().format_help()
    assert "70 internal error" in top and "see `deai-data --help`" not in top
    indexer_status = dict(leaves(build_indexer_parser()))[("status",)].format_help()
    assert "--chunk" not in indexer_status and "--no-enrich" not in indexer_status
    market = dict(leaves(build_parser()))
    assert "--market" not in market[("market", "deploy")].format_help()
    assert "--rpc" not in market[("market", "account")].format_help()
