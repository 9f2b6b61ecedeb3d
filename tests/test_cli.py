"""The `deai-data` command line, run as a real subprocess: publish, inspect, verify, get, keys, demo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO

from deai_data.storage import path_from_locator

CLI = shutil.which("deai-data", path=str(Path(sys.executable).parent)) or "deai-data"


def cli(*args: str, env: dict | None = None, check: int | None = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, env=env or dict(os.environ),
                          stdin=subprocess.DEVNULL)
    if check is not None:
        assert proc.returncode == check, proc.stderr + proc.stdout
    return proc


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "photos"
    for i in range(40):
        p = src / ("cat" if i % 2 else "dog") / f"{i}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(bytes([i]) * (i * 100))
    return src


@pytest.fixture
def published(folder, tmp_path):
    out = cli("publish", str(folder), "--store", str(tmp_path / "store"), "--shard-size", "20KiB",
              "--segment-size", "4KiB", "--license", "CC-BY-4.0", "--meta", "source=test", "--json")
    return json.loads(out.stdout)


def test_publish_inspect_verify_get(published, folder, tmp_path):
    assert published["records"] == 40 and published["shards"] > 1
    assert re.fullmatch(r"[0-9a-f]{64}", published["manifest_hash"])
    uri = published["manifest_uri"]

    info = json.loads(cli("inspect", uri, "--json").stdout)
    assert info["name"] == "photos" and info["license"] == "CC-BY-4.0" and info["metadata"] == {"source": "test"}
    assert info["manifest_hash"] == published["manifest_hash"]
    assert "key" not in json.dumps(info).replace("key_commitment", "")
    text = cli("inspect", uri).stdout
    assert "records        40" in text and published["content_root"] in text

    report = json.loads(cli("verify", uri, "--json").stdout)
    assert report["ok"] and report["shards_verified"] == published["shards"]

    cli("get", uri, "--out", str(tmp_path / "restored"))
    for f in folder.rglob("*.jpg"):
        assert (tmp_path / "restored" / f.relative_to(folder)).read_bytes() == f.read_bytes()
    cli("get", uri, "--out", str(tmp_path / "all.parquet"))
    assert pq.read_table(tmp_path / "all.parquet").num_rows == 40


def test_publish_previous_inherits_the_unchanged_shards(published, folder, tmp_path):
    for i in range(5):  # appended files (sorted after the others)
        (folder / "zebra").mkdir(exist_ok=True)
        (folder / "zebra" / f"{i}.jpg").write_bytes(b"z" * 3000)
    out = json.loads(cli("publish", str(folder), "--store", str(tmp_path / "store"), "--shard-size", "20KiB",
                         "--segment-size", "4KiB", "--license", "CC-BY-4.0", "--meta", "source=test",
                         "--previous", published["manifest_hash"], "--json").stdout)
    assert out["inherited_shards"] >= published["shards"] - 1 and out["sealed_shards"] <= 2
    assert out["shards"] == out["inherited_shards"] + out["sealed_shards"]
    cli("get", out["manifest_uri"], "--out", str(tmp_path / "restored"))
    for f in folder.rglob("*.jpg"):
        assert (tmp_path / "restored" / f.relative_to(folder)).read_bytes() == f.read_bytes()
    refused = cli("publish", str(folder), "--store", str(tmp_path / "store"), "--previous", "ab" * 32, check=10)
    assert "no published version" in refused.stderr


def test_exit_codes_for_tamper_missing_and_bad_input(published, tmp_path):
    uri = published["manifest_uri"]
    manifest = json.loads(path_from_locator(uri).read_bytes())
    shard = path_from_locator(manifest["shards"][0]["locators"][0])
    blob = bytearray(shard.read_bytes())
    blob[200] ^= 1
    shard.write_bytes(bytes(blob))
    failed = cli("verify", uri, check=3)
    assert "FAILED" in failed.stdout and "shard 0, segment 0" in failed.stdout
    shard.unlink()
    assert "object not found" in cli("get", uri, "--out", str(tmp_path / "x"), check=7).stderr
    assert "error:" in cli("inspect", str(tmp_path / "nothing.json"), check=7).stderr
    assert cli("publish", str(tmp_path / "nope"), "--store", str(tmp_path / "s"), check=9).stderr.startswith("error:")
    assert cli("publish", "x", "--store", "s", "--shard-size", "lots", check=2).returncode == 2


def test_wrong_passphrase_and_missing_passphrase(published, tmp_path):
    env = dict(os.environ, DEAI_KEYSTORE_PASSWORD="wrong")
    assert "wrong passphrase" in cli("verify", published["manifest_uri"], env=env, check=8).stderr
    env = {k: v for k, v in os.environ.items() if k != "DEAI_KEYSTORE_PASSWORD"}
    assert "DEAI_KEYSTORE_PASSWORD" in cli("verify", published["manifest_uri"], env=env, check=8).stderr


def test_keys_list_export_import(published, tmp_path, isolated_home):
    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert [e["name"] for e in listed["entries"]] == [published["manifest_hash"]]
    env = dict(os.environ, DEAI_EXPORT_PASSWORD="hand-over")
    cli("keys", "export", published["manifest_hash"], "--out", str(tmp_path / "key.json"), env=env)
    assert (tmp_path / "key.json").stat().st_mode & 0o077 == 0
    other = dict(env, DEAI_KEYSTORE=str(tmp_path / "other-ks"), DEAI_KEYSTORE_PASSWORD="other")
    assert cli("verify", published["manifest_uri"], env=other, check=8).returncode == 8
    cli("keys", "import", str(tmp_path / "key.json"), env=other)
    assert json.loads(cli("verify", published["manifest_uri"], "--json", env=other).stdout)["ok"]


def test_help_everywhere():
    for command in ("publish", "get", "verify", "inspect", "keys", "demo"):
        assert "usage: deai-data " + command in cli(command, "--help").stdout


@pytest.mark.slow
def test_demo_command_from_readme(tmp_path):
    """The README's main-job command (`make demo`, which runs `deai-data demo`) works as written."""
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    makefile = (REPO / "Makefile").read_text()
    assert "demo: setup\n\t$(BIN)/deai-data demo\n" in makefile
    assert "python -m pytest" in makefile.split("\ntest:")[1].split("\n\n")[0]
    out = cli("demo", "--json", "--dir", str(tmp_path / "demo"))
    summary = json.loads(out.stdout)
    assert summary["round_trip_identical"] and summary["tamper_detected"] and summary["records"] == 2000
    assert summary["buyer_copy_identical"] and summary["catalog_matches_chain"] and summary["model_learned"]
    assert [d["name"] for d in summary["top_datasets"]] == ["demo-images", "demo-captions", "demo-audio-clips"]
    assert summary["training"]["steps"] == 40 and summary["training"]["last_loss"] < summary["training"]["first_loss"]
    assert (tmp_path / "demo" / "index" / "catalog.duckdb").is_file()
    text = cli("demo").stdout
    for step in range(1, 11):
        assert re.search(rf"^  {step}\. .* \d+\.\d{{3}} s$", text, re.M), f"step {step} with its time"
    assert "the reader refused it" in text and "top datasets by revenue" in text and "loss " in text
    assert "model learned = True" in text


def test_demo_on_anvil_and_ipfs(anvil, ipfs_node, tmp_path):
    """`--rpc` and `--store`: the same lifecycle on a real node and a real IPFS store."""
    with anvil.rolled_back():
        out = cli("demo", "--json", "--records", "400", "--steps", "10", "--rpc", anvil.url,
                  "--store", f"ipfs://?api={ipfs_node.api}")
    summary = json.loads(out.stdout)
    assert summary["manifest_uri"].startswith("ipfs://") and summary["tamper_detected"] is None
    assert summary["buyer_copy_identical"] and summary["catalog_matches_chain"] and summary["records"] == 400
    assert summary["training"]["steps"] == 10 and summary["model_learned"] is None  # too few steps to judge


def test_get_refuses_paths_that_leave_the_target(tmp_path):
    """A dataset whose file paths climb out of the output folder (a malicious owner) is refused, and
    nothing is written outside it."""
    import pyarrow as pa

    from deai_data import publish
    for bad in ("../escaped.txt", "/tmp/absolute.txt"):
        result = publish(pa.table({"path": ["ok.txt", bad], "bytes": [b"fine", b"evil"]}),
                         store=tmp_path / "store", name="evil")
        out = tmp_path / "out" / "inner"
        proc = cli("get", result.manifest_uri, "--out", str(out), check=1)
        assert "unsafe path" in proc.stderr
        assert not (tmp_path / "out" / "escaped.txt").exists() and not Path("/tmp/absolute.txt").exists()
