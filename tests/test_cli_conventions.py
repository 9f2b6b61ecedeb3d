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
