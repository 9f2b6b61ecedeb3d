"""Copy the compiled DataMarket ABI and bytecode from forge's out/ into deai_data (users need no compiler), and the
test tokens' (tests/data/tokens.json: the Python tests deploy real ERC-20s without a compiler).

`python contracts/tools/export_artifact.py` writes both; with `--check` it only compares and exits 1 when a
committed artifact is stale (CI runs that after `forge build`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "contracts" / "out"
MARKET = ROOT / "deai_data" / "market" / "DataMarket.json"
TOKENS = ROOT / "tests" / "data" / "tokens.json"
TEST_TOKENS = ("TestToken", "FeeOnTransferToken")  # in contracts/test/helpers/Tokens.sol


def compiled(source: str, name: str) -> dict:
    built = json.loads((OUT / source / f"{name}.json").read_text())
    return {
        "contractName": name,
        "compiler": built.get("metadata", {}).get("compiler", {}).get("version"),
        "abi": built["abi"],
        "bytecode": built["bytecode"]["object"],
        "deployedBytecode": built["deployedBytecode"]["object"],
    }


def artifacts() -> dict[Path, str]:
    market = {**compiled("DataMarket.sol", "DataMarket"), "source": "contracts/src/DataMarket.sol"}
    tokens = {name: compiled("Tokens.sol", name) for name in TEST_TOKENS}
    return {path: json.dumps(doc, indent=1, sort_keys=True) + "\n"
            for path, doc in ((MARKET, market), (TOKENS, tokens))}


def main() -> int:
    stale = 0
    for path, fresh in artifacts().items():
        if "--check" not in sys.argv[1:]:
            path.parent.mkdir(exist_ok=True)
            path.write_text(fresh)
            print(f"wrote {path.relative_to(ROOT)}")
        elif not path.is_file() or path.read_text() != fresh:
            print(f"{path} is stale: run `make artifacts` and commit it", file=sys.stderr)
            stale = 1
        else:
            print(f"{path.relative_to(ROOT)} matches the contract sources")
    return stale


if __name__ == "__main__":
    sys.exit(main())
