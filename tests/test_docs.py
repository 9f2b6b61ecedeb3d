"""Every command in the docs works: blocks marked `<!-- docs-test: run ... -->` run as written (against
real anvil where they need a chain); every other shell command is checked (deai-data and deai-indexer
commands parse with the real argument parsers, scripts exist and take the flags used, make targets exist);
Python blocks compile; the catalog's example SQL runs on a real catalog; charts match their figures.

```text blocks are synopses (alternatives in `|`, optional parts in `[]`), not commands.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO
from PIL import Image

from deai_data.cli.main import build_parser
from deai_indexer.cli import build_parser as build_indexer_parser

DOCS = [REPO / "README.md", REPO / "examples" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "shell", "console"}
# Tools the docs use that the suite does not run from here (shell built-ins, installers, torchrun);
# their use is shown, not executed. Add a tool here only when a doc needs it.
EXTERNAL = {"cd", "export", "pip", "ray", "torchrun"}
MARKER = re.compile(r"<!-- docs-test: run ?([\w-]*) -->\s*$")


@dataclass
class Block:
    doc: Path
    line: int
    lang: str
    text: str
    run: str | None  # None: check only; "": run locally; else the services it needs

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    found, lines, i = [], doc.read_text().splitlines(), 0
    while i < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[i])
        if opening:
            start, i = i, i + 1
            while not lines[i].startswith("```"):
                i += 1
            marker = MARKER.match(lines[start - 1]) if start else None
            found.append(Block(doc, start + 1, opening.group(1), "\n".join(lines[start + 1:i]),
                               marker.group(1) if marker else None))
        i += 1
    return found


ALL = [b for doc in DOCS for b in blocks(doc)]


def commands(text: str) -> list[list[str]]:
    """Simple commands of a shell block: continuations joined, comments dropped, `<placeholders>` filled,
    `$(...)` taken out
    and checked on its own, split at `&&`, `||`, `;` and `|`, leading VAR=value assignments dropped."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        # placeholders such as <manifest id>: a hash where a hash is asked for (the CLI checks its form)
        line = re.sub(r"<[^<>]*hash>", "0" * 64, line)
        line = re.sub(r"<[a-zA-Z][^<>]*>", "1", line)
        inner = re.findall(r"\$\(([^()]*)\)", line)
        line = re.sub(r"\$\(([^()]*)\)", "VALUE", line)
        for piece in [line, *inner]:
            words = shlex.split(piece, comments=True)
            current: list[str] = []
            for word in [*words, ";"]:
                if word in ("&&", "||", ";", "|"):
                    while current and re.match(r"^[A-Z_][A-Z0-9_]*=", current[0]):
                        current.pop(0)
                    if current:
                        out.append(current)
                    current = []
                else:
                    current.append(word)
    return out


def _placeholders(args: list[str]) -> list[str]:
    return ["1" if re.fullmatch(r"[A-Z_]+_ID|ID", a) else a for a in args]


def check_command(words: list[str]) -> None:
    tool, args = Path(words[0]).name, _placeholders(words[1:])
    if tool in ("deai-data", "deai-indexer"):
        parser = build_parser() if tool == "deai-data" else build_indexer_parser()
        try:
            parser.parse_args(args)
        except SystemExit as exc:
            raise AssertionError(f"`{shlex.join(words)}` does not parse") from exc
    elif tool == "make":
        targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
        assert set(args) <= targets, f"no make target {set(args) - targets}"
    elif re.fullmatch(r"python[\d.]*", tool):
        if args[:2] == ["-m", "venv"] or args[:1] == ["-c"]:
            return
        if args[0] == "-m":
            __import__(args[1])
            return
        script = REPO / args[0]
        assert script.is_file(), f"no script {args[0]}"
        source = script.read_text()
        for flag in (a.split("=")[0] for a in args[1:] if a.startswith("--")):
            assert f'"{flag}"' in source, f"{args[0]} takes no {flag}"
    elif tool == "forge":
        return  # contracts/: `make contracts-test` runs forge in CI
    else:
        assert tool in EXTERNAL, f"unknown command {tool!r}: run it in a test or list it as external"


@pytest.mark.parametrize("block", [b for b in ALL if b.lang in SHELL], ids=lambda b: b.where)
def test_shell_commands_are_valid(block):
    found = commands(block.text)
    assert found, "an empty shell block"
    for words in found:
        try:
            check_command(words)
        except AssertionError as exc:
            raise AssertionError(f"{block.where}: {exc}") from None


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "python"], ids=lambda b: b.where)
def test_python_blocks_compile(block):
    compile(block.text, block.where, "exec")


def test_every_doc_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    for doc in (REPO / "docs").glob("*.md"):
        assert f"docs/{doc.name}" in readme, f"README.md does not link {doc.name}"


def test_relative_links_and_images_exist():
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.relative_to(REPO)} links a missing {target}"


def test_charts_are_drawn_from_the_current_figures(tmp_path):
    results = sorted((REPO / "bench" / "results").glob("*.json"))
    assert results
    benchmarks = (REPO / "docs" / "benchmarks.md").read_text()
    for path in results:
        chart = REPO / "docs" / "img" / f"bench-{path.stem}.png"
        assert f"img/{chart.name}" in benchmarks
        with Image.open(chart) as image:
            assert image.text.get("Source-SHA256") == hashlib.sha256(path.read_bytes()).hexdigest(), \
                f"{chart.name} is stale: run `.venv/bin/python bench/plots.py`"
    subprocess.run([sys.executable, str(REPO / "bench" / "plots.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True, timeout=120)
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == sorted(f"bench-{p.stem}" for p in results)


# ---- blocks that run ---------------------------------------------------------------------------------

def run_blocks(doc: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = "\n".join(b.text for b in ALL if b.doc == REPO / doc and b.run is not None)
    assert script, f"{doc} has no block marked to run"
    env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{doc}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def photos(root: Path) -> None:
    for i in range(30):
        path = root / "photos" / ("cat" if i % 2 else "dog") / f"{i:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([i]) * (500 + i))


def test_getting_started_runs(tmp_path):
    photos(tmp_path)
    out = run_blocks("docs/getting-started.md", tmp_path, dict(os.environ)).stdout
    assert "OK: " in out and "wrote 30 records" in out and "data-key" in out
    assert sorted(p.name for p in (tmp_path / "restored").rglob("*.jpg")) == sorted(
        p.name for p in (tmp_path / "photos").rglob("*.jpg"))


def _chain_env(anvil, market: str, account) -> dict[str, str]:
    return dict(os.environ, DEAI_RPC_URL=anvil.url, DEAI_MARKET=market, DEAI_ETH_PRIVATE_KEY=account.key.hex())


def test_owner_guide_runs(anvil, tmp_path):
    from deai_data import Market, connect
    from deai_data.chain.connect import anvil_dev_accounts
    photos(tmp_path)
    treasury, owner = anvil_dev_accounts()[:2]
    with anvil.rolled_back():
        market = Market.deploy(connect(anvil.url), treasury, fee_bps=250)
        out = run_blocks("docs/guide-owner.md", tmp_path, _chain_env(anvil, market.address, owner)).stdout
        listing = market.listing(1)
    assert listing.owner.lower() == owner.address.lower() and listing.price == 10**16
    assert "records" in out and "OK: " in out


def test_trainer_guide_runs(anvil, tmp_path):
    import pyarrow as pa

    from deai_data import KeyAgent, Keystore, Market, connect, publish
    from deai_data.chain.connect import anvil_dev_accounts
    treasury, owner, buyer = anvil_dev_accounts()[:3]
    with anvil.rolled_back():
        w3 = connect(anvil.url)
        owner_keys = Keystore(tmp_path / "owner-keys", passphrase="owner", scrypt_n=2**10)
        seller = Market(w3, Market.deploy(w3, treasury).address, owner, keystore=owner_keys)
        result = publish(pa.table({"x": list(range(100))}), store=tmp_path / "store", name="t", keystore=owner_keys,
                         author=owner)
        dataset_id = seller.register(result, price=10**16)
        assert dataset_id == 1
        agent, stop = KeyAgent(seller, state_path=tmp_path / "agent.json", confirmations=0, poll_interval=0.2), \
            threading.Event()
        serving = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        serving.start()
        try:
            out = run_blocks("docs/guide-trainer.md", tmp_path, _chain_env(anvil, seller.address, buyer)).stdout
        finally:
            stop.set()
            serving.join(30)
    assert '"purchase_id": 1' in out and "manifest_hash" in out


def test_analyst_guide_runs_and_catalog_examples_query(anvil, tmp_path, monkeypatch):
    from market_scenario import Scenario

    from deai_data import Catalog, connect
    with anvil.rolled_back():
        scenario = Scenario(connect(anvil.url), seed=21)
        scenario.run(datasets=3, purchases=40, versions=1)
        out = run_blocks("docs/guide-analyst.md", tmp_path, _chain_env(anvil, scenario.market.address,
                                                                        scenario.owners[0])).stdout
    assert '"status","n"' in out and "purchases" in out
    statements = [s for b in ALL if b.lang == "sql" for s in b.text.split(";") if s.strip() and
                  not all(line.startswith("--") for line in s.strip().splitlines())]
    assert len(statements) >= 5
    monkeypatch.chdir(tmp_path)  # the guide's read_parquet path is relative to where the index is
    with Catalog(tmp_path / "deai-index") as catalog:
        for statement in statements:
            catalog.sql(statement)


def test_every_security_claim_names_a_test_that_exists():
    """docs/security.md: every test it cites exists (pytest, forge or the fuzzer's corpus), and every row of
    its tables cites one, except the threat marked as not mitigated."""
    text = (REPO / "docs" / "security.md").read_text()
    files = [*(REPO / "tests").glob("*.py"), *(REPO / "contracts" / "test").glob("*.sol")]
    sources = "\n".join(p.read_text() for p in files)
    cited = set(re.findall(r"`(?:[\w/.]+::)?((?:test|testFuzz|invariant)_\w+)`", text))
    cited |= set(re.findall(r"[(,] ?`?((?:test|testFuzz|invariant)_\w+)`?", text))
    assert len(cited) > 40
    missing = sorted(name for name in cited if not re.search(rf"\bdef {name}\(|\bfunction {name}\(", sources))
    assert not missing, f"docs/security.md cites tests that do not exist: {missing}"
    for path in re.findall(r"`(tests/[\w/]+\.py|contracts/test/[\w.]+\.sol)", text):
        assert (REPO / path).is_file(), path
    rows = [line for line in text.splitlines() if re.match(r"^\| T\d+ \|", line)]
    assert len(rows) >= 17
    for row in rows:
        shown = row.rstrip("|").rsplit("|", 1)[1].strip()
        assert shown != "-" or "not mitigated" in row, row
