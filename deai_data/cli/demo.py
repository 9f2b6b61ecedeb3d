"""`deai-data demo`: the whole core lifecycle on embedded defaults, in a scratch folder.

Generates a small image-classification folder, publishes it sealed to a local store, opens it,
verifies every shard, shows that a flipped byte is caught, then sells it on an in-process chain:
register, purchase, the owner's key agent delivers the sealed key, the buyer opens it by dataset id.
Prints what each step took.
"""

from __future__ import annotations

import hashlib
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..crypto.keystore import Keystore
from ..dataset.publish import publish
from ..dataset.reader import open_dataset
from ..errors import IntegrityError
from ..storage.local import path_from_locator
from .progress import human_bytes

CLASSES = ("cat", "dog", "bird", "fish")


def generate_images(root: Path, count: int, *, size: int = 3072, seed: int = 0) -> int:
    """Write `count` fake 32x32x3 images into one folder per class; returns the bytes written."""
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(count, size), dtype=np.uint8)
    for i in range(count):
        (root / CLASSES[i % len(CLASSES)] / f"{i:06d}.raw").write_bytes(pixels[i].tobytes())
    return count * size


def run_demo(workdir: str | Path | None = None, *, records: int = 2000, shard_size: int = 1 << 20,
             say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo and return its summary (also printed step by step through `say`)."""
    scratch = None if workdir is not None else tempfile.TemporaryDirectory(prefix="deai-demo-")
    root = Path(workdir if workdir is not None else scratch.name)  # type: ignore[union-attr]
    try:
        return _steps(root, records, shard_size, say)
    finally:
        if scratch is not None:
            scratch.cleanup()


def _steps(root: Path, records: int, shard_size: int, say: Callable[[str], None]) -> dict[str, Any]:
    def step(label: str, started: float) -> None:
        say(f"  {label:<76} {time.perf_counter() - started:6.3f} s")

    say(f"deai-data demo in {root} (local store, keystore with a throw-away passphrase)")
    t = time.perf_counter()
    size = generate_images(root / "source", records)
    step(f"1. generated {records} images in {len(CLASSES)} classes ({human_bytes(size)})", t)

    keystore = Keystore(root / "keystore", passphrase=secrets.token_hex(16))
    t = time.perf_counter()
    result = publish(root / "source", store=root / "store", name="demo-images", license="CC0-1.0",
                     description="generated 32x32 RGB images", shard_size=shard_size,
                     keystore=keystore, journal_dir=root / "journals")
    step(f"2. published {len(result.manifest.shards)} sealed shards, key kept in the keystore", t)
    say(f"     manifest {result.manifest_uri}")
    say(f"     manifest hash {result.manifest_hash}")
    say(f"     content root  {result.content_root}")

    t = time.perf_counter()
    dataset = open_dataset(result.manifest_uri, keystore=keystore)
    table = dataset.to_arrow()
    labels = table.column("label").value_counts().to_pylist()
    step(f"3. opened and decrypted {table.num_rows} records", t)
    say("     labels: " + ", ".join(f"{c['values']}={c['counts']}" for c in labels))

    t = time.perf_counter()
    report = dataset.verify()
    step(f"4. verified {report.shards} shards, {human_bytes(report.sealed_bytes)} sealed", t)

    t = time.perf_counter()
    victim = path_from_locator(result.manifest.shards[0].locators[0])
    original = victim.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    victim.write_bytes(bytes(flipped))
    try:
        open_dataset(result.manifest_uri, keystore=keystore).read_shard(0)
        caught = "NOT DETECTED"
    except IntegrityError as exc:
        caught = exc.message
    finally:
        victim.write_bytes(original)
    step("5. flipped one stored byte: the reader refused it", t)
    say(f"     {caught}")

    bought = _market_steps(root, result, keystore, step, say)

    digest = hashlib.sha256(b"".join(table.column("bytes").to_pylist())).hexdigest()
    source_digest = hashlib.sha256(b"".join(
        p.read_bytes() for p in sorted((root / "source").rglob("*.raw"), key=lambda p: p.relative_to(
            root / "source").as_posix()))).hexdigest()
    summary = {
        "records": table.num_rows, "shards": len(result.manifest.shards),
        "manifest_uri": result.manifest_uri, "manifest_hash": result.manifest_hash,
        "content_root": result.content_root, "round_trip_identical": digest == source_digest,
        "tamper_detected": caught != "NOT DETECTED", **bought,
    }
    say(f"done: round trip identical = {summary['round_trip_identical']}, "
        f"tamper detected = {summary['tamper_detected']}, "
        f"buyer's copy identical = {summary['buyer_copy_identical']}")
    return summary


def _market_steps(root: Path, result: Any, owner_keystore: Keystore, step: Callable[[str, float], None],
                  say: Callable[[str], None]) -> dict[str, Any]:
    """Sell the published dataset on the embedded chain and buy it back as another party."""
    from ..chain import connect, dev_accounts
    from ..market import KeyAgent, Market

    t = time.perf_counter()
    w3 = connect()
    treasury, owner, buyer = dev_accounts(w3)[:3]
    market = Market.deploy(w3, treasury, fee_bps=250)
    seller = Market(w3, market.address, owner, keystore=owner_keystore)
    dataset_id = seller.register(result, price=10**16, delivery_window=3600)
    step(f"6. deployed the market on an in-process chain; registered dataset {dataset_id}", t)

    t = time.perf_counter()
    shopper = Market(w3, market.address, buyer,
                     keystore=Keystore(root / "buyer-keystore", passphrase=secrets.token_hex(16)))
    purchase = shopper.purchase(dataset_id)
    step(f"7. buyer paid 0.01 ETH into escrow (purchase {purchase.purchase_id}) with a fresh X25519 key", t)

    t = time.perf_counter()
    delivered = KeyAgent(seller, state_path=root / "agent.json").run_once()
    step(f"8. owner's key agent sealed the key to the buyer (HPKE) and delivered {len(delivered)}", t)

    t = time.perf_counter()
    shopper.receive_key(purchase.purchase_id)
    copy = shopper.open_dataset(dataset_id).to_arrow()
    step(f"9. buyer unsealed the key, checked its commitment, opened {copy.num_rows} records by id", t)
    say(f"     owner can withdraw {seller.withdrawable() / 1e18:.4f} ETH (price less the 2.5 % fee)")
    original = open_dataset(result.manifest_uri, keystore=owner_keystore).to_arrow()
    return {"dataset_id": dataset_id, "purchase_id": purchase.purchase_id, "market": market.address,
            "buyer_copy_identical": copy.equals(original)}
