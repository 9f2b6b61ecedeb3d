"""Shared fixtures: an isolated home (keystore, journals) per test, a fast keystore, sample tables."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from deai_data import Keystore

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own DEAI_HOME / DEAI_KEYSTORE and a keystore passphrase in the environment."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("DEAI_HOME", str(home))
    monkeypatch.setenv("DEAI_KEYSTORE", str(home / "keystore"))
    monkeypatch.setenv("DEAI_KEYSTORE_PASSWORD", "correct horse battery staple")
    # The services the tests start listen on loopback and the stores are local folders, which the chain then
    # names: allow fetching them on purpose, as a deployment would have to (tests of the policy itself unset it).
    monkeypatch.setenv("DEAI_FETCH_ALLOW", "private,files")
    return home


@pytest.fixture
def keystore(tmp_path: Path) -> Keystore:
    """A keystore with cheap scrypt parameters (the format is the same; only the cost differs)."""
    return Keystore(tmp_path / "ks", passphrase="test passphrase", scrypt_n=2**10)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


def sample_table(rows: int = 5000, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "id": np.arange(rows, dtype=np.int64),
        "score": rng.random(rows),
        "text": [f"record {i} " + "x" * int(rng.integers(0, 40)) for i in range(rows)],
        "blob": [rng.bytes(int(rng.integers(0, 300))) for _ in range(rows)],
    })


@pytest.fixture
def table() -> pa.Table:
    return sample_table()


def env_without_pythonpath() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="session")
def anvil():
    """One real anvil for the whole session (tests isolate themselves with evm_snapshot/evm_revert)."""
    from chains import Anvil
    node = Anvil()
    yield node
    node.stop()


@pytest.fixture(params=["embedded", "anvil"])
def w3(request: pytest.FixtureRequest):
    """A chain of each kind: a fresh in-process EVM, or the session's anvil rolled back after the test."""
    from deai_data.chain import connect
    if request.param == "embedded":
        yield connect()
        return
    node = request.getfixturevalue("anvil")
    chain = connect(node.url)
    snapshot = chain.provider.make_request("evm_snapshot", [])["result"]
    yield chain
    chain.provider.make_request("evm_revert", [snapshot])


@pytest.fixture(scope="session")
def arlocal():
    """One real arlocal gateway for the whole session (objects are content-addressed: tests do not
    interfere; each test pays from its own wallet)."""
    from arweave_services import Arlocal
    gateway = Arlocal()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="session")
def ipfs_node():
    """One real js-ipfs node (offline, loopback) for the whole session (blocks are content-addressed)."""
    from ipfs_services import JsIpfs
    daemon = JsIpfs()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def funded_wallet(arlocal):
    """An RSA-4096 Arweave wallet with plenty of (arlocal) winston."""
    from deai_data.storage.arweave import Wallet
    wallet = Wallet.generate()
    arlocal.mint(wallet.address)
    return wallet


@pytest.fixture(scope="session")
def s3_server():
    """One real S3 API server (moto's standalone server, loopback) for the whole session."""
    from s3_services import MotoS3
    server = MotoS3()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The S3 server as this process's `s3://` endpoint (credentials and DEAI_S3_ENDPOINT in the environment),
    with a fresh shared reader for `s3://` locators."""
    from s3_services import CREDENTIALS

    from deai_data.storage import register_store
    from deai_data.storage.s3 import reader_from_env
    for name, value in {**CREDENTIALS, "DEAI_S3_ENDPOINT": s3_server.endpoint}.items():
        monkeypatch.setenv(name, value)
    register_store("s3", reader_from_env, replace=True)
    yield s3_server
    register_store("s3", reader_from_env, replace=True)


SERVICE_FIXTURES = {"anvil", "w3", "arlocal", "ipfs_node", "funded_wallet", "s3_server", "s3", "ray_cluster"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use a service (a chain, arlocal, an IPFS node) carry the `services` marker, so that
    `make test-fast` (`-m "not services and not slow"`) runs the rest without starting any."""
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """A local Ray cluster of two CPUs for the session: started by `ray.init` here, its processes stopped by
    `ray.shutdown`. Its tasks see the loopback S3 server as their `s3://` endpoint. Yields its address, for drivers
    in other processes."""
    import ray
    from s3_services import CREDENTIALS
    env = {**CREDENTIALS, "DEAI_S3_ENDPOINT": s3_server.endpoint}
    ray.init(num_cpus=2, object_store_memory=512 << 20, include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": env})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
