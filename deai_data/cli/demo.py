"""`deai-data demo`: the whole lifecycle, by default on embedded defaults (local store, in-process chain).

An owner publishes a generated image-classification dataset sealed, sells it on a market; buyers pay,
the key agent delivers, the indexer builds the catalog, and a trainer streams the images into a
PyTorch DataLoader and trains a tiny model. Every step prints what it did and how long it took.
"""

from __future__ import annotations

import hashlib
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..crypto.keystore import Keystore
from ..dataset.publish import PublishResult, publish
from ..dataset.reader import open_dataset
from ..errors import DeaiError, IntegrityError
from ..storage.base import Store
from ..storage.local import path_from_locator
from ..storage.registry import read_through
from .sizes import human_bytes

CLASSES = ("cat", "dog", "bird", "fish")
SIDE = 32  # images are SIDE x SIDE RGB
# Dataset name -> purchases, for a market with more than one dataset to rank in the catalog.
SIDE_DATASETS = {"demo-captions": 3, "demo-audio-clips": 1}
IMAGE_PURCHASES = 2
PRICE = 10**16  # wei (0.01 ETH)
CHALLENGE_PERIOD = 600  # the contract's minimum: the demo moves the dev chain's clock past it


def generate_images(root: Path, count: int, *, seed: int = 0) -> int:
    """Write `count` generated 32x32 RGB images into one folder per class (each class has its own
    colour tint, so a tiny model can learn them); returns the bytes written."""
    rng = np.random.default_rng(seed)
    tints = np.array([[60, -30, -30], [-30, 60, -30], [-30, -30, 60], [40, 40, -60]], dtype=np.int16)
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
    noise = rng.integers(40, 216, size=(count, 3, SIDE, SIDE), dtype=np.int16)
    for i in range(count):
        label = i % len(CLASSES)
        pixels = np.clip(noise[i] + tints[label][:, None, None], 0, 255).astype(np.uint8)
        (root / CLASSES[label] / f"{i:06d}.raw").write_bytes(pixels.tobytes())
    return count * 3 * SIDE * SIDE


@dataclass
class _Run:
    """What the steps share."""

    root: Path
    say: Callable[[str], None]
    store: Store
    rpc: str | None
    w3: Any
    accounts: list[Any]
    records: int
    shard_size: int
    train_steps: int
    summary: dict[str, Any] = field(default_factory=dict)

    def step(self, label: str, started: float) -> None:
        self.say(f"  {label:<84} {time.perf_counter() - started:6.3f} s")


def run_demo(workdir: str | Path | None = None, *, records: int = 2000, shard_size: int = 1 << 20,
             store: str | None = None, rpc: str | None = None, train_steps: int = 40,
             say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo and return its summary (also printed step by step through `say`).

    store: a store URI (`ar://?...`, `ipfs://?...`, a folder) instead of a local store in the work folder.
    rpc: a development node's JSON-RPC URL (anvil; its published dev accounts play the parts) instead of
    the in-process chain.
    """
    scratch = None if workdir is not None else tempfile.TemporaryDirectory(prefix="deai-demo-")
    root = Path(workdir if workdir is not None else scratch.name)  # type: ignore[union-attr]
    from ..chain import connect, dev_accounts
    from ..storage import fetch_policy

    # The demo's chain names its own local store (file://) and dev services (loopback): allow fetching them,
    # on purpose and for this process only; a deployment keeps the default (public network only).
    fetch_policy.configure(fetch_policy.OPEN)
    w3 = connect(rpc)
    # The store also serves the demo's reads (a remote store's gateways or node, not the environment's).
    run = _Run(root, say, read_through(store or root / "store"), rpc, w3, dev_accounts(w3)[:8], records,
               shard_size, train_steps)
    try:
        say(f"deai-data demo in {root} (store {store or 'local'}; chain {rpc or 'in-process'}; "
            "keystores with throw-away passphrases; fetching local files and loopback allowed)")
        result, keystore, table = _publish_steps(run)
        seller, buyer = _market_steps(run, result, keystore)
        _catalog_step(run, seller)
        _training_step(run, buyer)
        _check_round_trip(run, table)
        say("done: " + ", ".join(f"{name.replace('_', ' ')} = {run.summary[name]}" for name in CHECKS))
        return run.summary
    finally:
        if scratch is not None:
            scratch.cleanup()


# The summary's checks: each True, or None when it does not apply (the tamper check on a remote store, the
# learning check after fewer than JUDGED_AFTER training steps).
JUDGED_AFTER = 20
CHECKS = ("round_trip_identical", "tamper_detected", "buyer_copy_identical", "wrong_key_refunded",
          "catalog_matches_chain", "model_learned")


def demo_passed(summary: dict[str, Any]) -> bool:
    return all(summary[name] in (True, None) for name in CHECKS)


def _publish_steps(run: _Run) -> tuple[PublishResult, Keystore, pa.Table]:
    t = time.perf_counter()
    size = generate_images(run.root / "source", run.records)
    run.step(f"1. generated {run.records} images in {len(CLASSES)} classes ({human_bytes(size)})", t)

    keystore = Keystore(run.root / "keystore", passphrase=secrets.token_hex(16))
    t = time.perf_counter()
    result = publish(run.root / "source", store=run.store, name="demo-images", license="CC0-1.0",
                     description="generated 32x32 RGB images, four classes", shard_size=run.shard_size,
                     keystore=keystore, journal_dir=run.root / "journals", author=run.accounts[1])
    run.step(f"2. owner published and signed {len(result.manifest.shards)} sealed shards; data key in the keystore",
             t)
    run.say(f"     manifest {result.manifest_uri}")
    run.say(f"     manifest hash {result.manifest_hash}  content root {result.content_root[:16]}...")

    t = time.perf_counter()
    dataset = open_dataset(result.manifest_uri, keystore=keystore)
    table = dataset.to_arrow()
    report = dataset.verify()
    run.step(f"3. opened, decrypted {table.num_rows} records; verified {report.shards} shards "
             f"({human_bytes(report.sealed_bytes)} sealed)", t)
    run.summary.update(records=table.num_rows, shards=len(result.manifest.shards),
                       manifest_uri=result.manifest_uri, manifest_hash=result.manifest_hash,
                       content_root=result.content_root)

    t = time.perf_counter()
    if result.manifest.shards[0].locators[0].startswith("file://"):
        caught = _tamper(result, keystore)
        run.summary["tamper_detected"] = caught is not None
        run.step(f"4. flipped one stored byte: {'the reader refused it' if caught else 'NOT DETECTED'}", t)
        if caught:
            run.say(f"     {caught}")
    else:
        run.summary["tamper_detected"] = None
        run.step("4. (the tamper check flips a byte in a local store; skipped for a remote one)", t)
    return result, keystore, table


def _tamper(result: PublishResult, keystore: Keystore) -> str | None:
    """Flip one byte of the first shard in the local store and read it back: the reader's error message,
    or None when the reader took the altered shard."""
    victim = path_from_locator(result.manifest.shards[0].locators[0])
    original = victim.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    victim.write_bytes(bytes(flipped))
    try:
        open_dataset(result.manifest_uri, keystore=keystore).read_shard(0)
        return None
    except IntegrityError as exc:
        return exc.message
    finally:
        victim.write_bytes(original)


def _market_steps(run: _Run, result: PublishResult, owner_keystore: Keystore) -> tuple[Any, Any]:
    """Sell the images (and two small side datasets) on a market; buyers pay, the agent delivers, the first
    buyer opens the images by dataset id; a dishonest seller's wrong key is disputed and refunded; the agent
    settles after the challenge period. Returns the seller's and that buyer's market clients."""
    from ..chain import dev_advance_time
    from ..market import KeyAgent, Market

    t = time.perf_counter()
    w3 = run.w3
    treasury, owner, *buyers = run.accounts[:6]
    deployed = Market.deploy(w3, treasury, fee_bps=250)
    seller = Market(w3, deployed.address, owner, keystore=owner_keystore)
    terms: dict[str, Any] = {"delivery_window": 3600, "challenge_period": CHALLENGE_PERIOD}
    images_id = seller.register(result, price=PRICE, **terms)
    side_ids = []
    for n, name in enumerate(SIDE_DATASETS):
        side = publish(pa.table({"text": [f"{name} record {i}" for i in range(200)]}), store=run.store,
                       name=name, keystore=owner_keystore, journal_dir=run.root / "journals", author=owner)
        side_ids.append(seller.register(side, price=PRICE // (n + 2), **terms))
    run.step(f"5. deployed the market; owner registered dataset {images_id} (images, 0.01 ETH) and "
             f"{len(side_ids)} more", t)
    run.say(f"     market {deployed.address}")

    t = time.perf_counter()
    shoppers = [Market(w3, deployed.address, buyer,
                       keystore=Keystore(run.root / f"buyer-{i}-keystore", passphrase=secrets.token_hex(16)))
                for i, buyer in enumerate(buyers)]
    orders = [(shoppers[i], images_id) for i in range(IMAGE_PURCHASES)]
    for dataset_id, count in zip(side_ids, SIDE_DATASETS.values(), strict=True):
        orders += [(shoppers[-1 - i], dataset_id) for i in range(count)]
    first = orders[0][0].purchase(images_id)
    for shopper, dataset_id in orders[1:]:
        shopper.purchase(dataset_id)
    run.step(f"6. {len(orders)} purchases paid into escrow, each checked against its signed manifest first", t)

    t = time.perf_counter()
    agent = KeyAgent(seller, state_path=run.root / "agent.json", confirmations=0)
    delivered = agent.run_once()
    run.step(f"7. owner's key agent encrypted the key to each buyer's one-time key and delivered {len(delivered)}",
             t)

    t = time.perf_counter()
    buyer = shoppers[0]
    buyer.receive_key(first.purchase_id)
    copy = buyer.open_dataset(images_id).to_arrow()
    run.step(f"8. buyer opened the key, checked its commitment, opened {copy.num_rows} records by id", t)
    original = open_dataset(result.manifest_uri, keystore=owner_keystore).to_arrow()
    run.summary.update(dataset_id=images_id, purchase_id=first.purchase_id, market=deployed.address,
                       purchases=len(orders) + 1, buyer_copy_identical=copy.equals(original))

    t = time.perf_counter()
    refunded = _dishonest_sale(run, deployed.address, run.accounts[6], shoppers[2])
    run.step(f"9. a dishonest seller delivered a wrong key: the buyer's SDK disputed it, the contract refunded "
             f"{refunded / 1e18:.4f} ETH", t)

    t = time.perf_counter()
    dev_advance_time(w3, CHALLENGE_PERIOD + 1)
    agent.run_once()
    run.step("10. (dev clock moved past the 10-minute challenge period) the agent settled its deliveries", t)
    run.say(f"     owner can withdraw {seller.withdrawable() / 1e18:.4f} ETH (sales less the 2.5 % fee)")
    return seller, buyer


def _dishonest_sale(run: _Run, market_address: str, rogue: Any, shopper: Any) -> int:
    """A seller who bypasses the SDK and delivers a wrong key by hand; returns what the buyer got back (the
    summary records whether the contract refunded the whole price and counted the lost dispute)."""
    from ..crypto.key_delivery import DeliveryContext, buyer_key_hash, seal_key
    from ..market import Market

    keystore = Keystore(run.root / "rogue-keystore", passphrase=secrets.token_hex(16))
    rogue_market = Market(run.w3, market_address, rogue, keystore=keystore)
    bait = publish(pa.table({"text": ["too good to be true"] * 50}), store=run.store, name="demo-bait",
                   keystore=keystore, journal_dir=run.root / "journals", author=rogue)
    bait_id = rogue_market.register(bait, price=PRICE, delivery_window=3600, challenge_period=CHALLENGE_PERIOD)
    purchase = shopper.purchase(bait_id)
    buyer_key = rogue_market.purchase_event(purchase)["buyerKey"]
    garbage = seal_key(secrets.token_bytes(32), buyer_key,
                       DeliveryContext(rogue_market.chain_id, rogue_market.address, purchase.purchase_id))
    rogue_market._send(rogue_market.contract.functions.deliverKey(purchase.purchase_id, buyer_key_hash(buyer_key),
                                                                   garbage.as_call()), "deliver a wrong key")
    before = run.w3.eth.get_balance(shopper.me)
    try:
        shopper.receive_key(purchase.purchase_id)
    except DeaiError as exc:
        run.say(f"     {exc.message}")
    refunded = shopper.purchase_info(purchase.purchase_id).status == "refunded"
    run.summary["wrong_key_refunded"] = refunded and rogue_market.disputes_lost(rogue.address) == 1 and \
        run.w3.eth.get_balance(shopper.me) > before
    return purchase.amount if refunded else 0


def _catalog_step(run: _Run, seller: Any) -> None:
    """Index the market's events into Parquet + DuckDB, print the top datasets, and check the catalog's
    revenue against the owner's balance on-chain."""
    from ..catalog import Catalog

    t = time.perf_counter()
    index = run.root / "index"
    _indexer()(run.rpc or run.w3, seller.address, index, confirmations=0).sync()
    with Catalog(index) as catalog:
        top = catalog.top_datasets(3).to_pylist()
        earned = int(catalog.sql("SELECT sum(owner_revenue) AS r FROM datasets").column("r")[0].as_py())
    run.step("11. indexer wrote the market's events to Parquet and built the DuckDB catalog", t)
    run.say("     top datasets by revenue:")
    for row in top:
        gross = int(row["gross"]) / 1e18
        run.say(f"       #{row['dataset_id']} {row['name']:<18} {row['sales']} sales  {gross:.4f} ETH")
    run.summary["top_datasets"] = [{"dataset_id": r["dataset_id"], "name": r["name"], "sales": r["sales"],
                                    "gross_wei": str(r["gross"])} for r in top]
    run.summary["catalog_matches_chain"] = earned == seller.withdrawable()


def _indexer() -> Any:
    """The indexer class an installed distribution registers (entry point group `deai_data.indexers`): the SDK
    does not import the indexer, which depends on it."""
    from importlib.metadata import entry_points

    found = list(entry_points(group="deai_data.indexers"))
    if not found:
        raise DeaiError("the demo's catalog step needs an indexer",
                        hint="pip install -e indexer (the deai-indexer distribution)")
    return found[0].load()


def _training_step(run: _Run, buyer: Any) -> None:
    """Stream the bought images into a DataLoader and train a tiny CNN for a few steps on CPU."""
    try:
        import torch
    except ImportError as exc:
        raise DeaiError("the demo's training step needs PyTorch", hint="pip install 'deai-data[torch]'") from exc
    from ..torch import StreamingDataLoader, StreamingDataset

    def to_tensors(batch: dict[str, Any]) -> dict[str, Any]:
        pixels = np.frombuffer(b"".join(batch["bytes"]), dtype=np.uint8).reshape(-1, 3, SIDE, SIDE)
        return {"image": torch.from_numpy(pixels.astype(np.float32) / 255.0),
                "label": torch.tensor([CLASSES.index(name) for name in batch["label"]])}

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, len(CLASSES)))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    t = time.perf_counter()
    dataset = StreamingDataset(run.summary["dataset_id"], market=buyer, batch_size=64, batched=True, seed=1,
                               columns=["bytes", "label"], batch_transform=to_tensors)
    loader = StreamingDataLoader(dataset)
    losses: list[float] = []
    hits: list[tuple[int, int]] = []  # (correct, batch size) of each batch, predicted before its update
    while len(losses) < run.train_steps:  # the loader moves to the next epoch when one ends
        for batch in loader:
            logits = model(batch["image"])
            loss = torch.nn.functional.cross_entropy(logits, batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            hits.append((int((logits.argmax(1) == batch["label"]).sum()), len(batch["label"])))
            if len(losses) == run.train_steps:
                break
    last = hits[-5:]
    accuracy = sum(c for c, _ in last) / sum(n for _, n in last)
    run.step(f"12. trainer streamed verified batches into a DataLoader; trained a tiny CNN {len(losses)} steps", t)
    run.say(f"     loss {losses[0]:.3f} -> {losses[-1]:.3f}; accuracy on the last 5 batches {accuracy:.0%} "
            f"(chance {1 / len(CLASSES):.0%})")
    run.summary["training"] = {"steps": len(losses), "first_loss": losses[0], "last_loss": losses[-1],
                               "accuracy": accuracy}
    # A few steps are a smoke run: learning is judged only from JUDGED_AFTER steps on (None: not judged).
    run.summary["model_learned"] = accuracy > 2 / len(CLASSES) if len(losses) >= JUDGED_AFTER else None
    if len(losses) < JUDGED_AFTER:
        run.say(f"     (learning is judged from {JUDGED_AFTER} steps on: not judged)")


def _check_round_trip(run: _Run, table: pa.Table) -> None:
    source = run.root / "source"
    files = sorted(source.rglob("*.raw"), key=lambda p: p.relative_to(source).as_posix())
    expected = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()
    run.summary["round_trip_identical"] = hashlib.sha256(b"".join(table.column("bytes").to_pylist())).hexdigest() \
        == expected
