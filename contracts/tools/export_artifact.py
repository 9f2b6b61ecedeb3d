"""Copy the compiled DataMarket ABI and bytecode from forge's out/ into deai_data (users need no compiler).

`python contracts/tools/export_artifact.py` writes deai_data/market/DataMarket.json; with `--check` it
only compares and exits 1 when the committed artifact is stale (CI runs that after `forge build`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "contracts" / "out" / "DataMarket.sol" / "DataMarket.json"
COMMITTED = ROOT / "deai_data" / "market" / "DataMarket.json"


def artifact() -> str:
    built = json.loads(BUILT.read_text())
    doc = {
        "contractName": "DataMarket",
        "source": "contracts/src/DataMarket.sol",
        "compiler": built.get("metadata", {}).get("compiler", {}).get("version"),
        "abi": built["abi"],
        "bytecode": built["bytecode"]["object"],
        "deployedBytecode": built["deployedBytecode"]["object"],
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main() -> int:
    fresh = artifact()
    if "--check" in sys.argv[1:]:
        if not COMMITTED.is_file() or COMMITTED.read_text() != fresh:
            print(f"{COMMITTED} is stale: run `make artifacts` and commit it", file=sys.stderr)
            return 1
        print(f"{COMMITTED.relative_to(ROOT)} matches the contract sources")
        return 0
    COMMITTED.write_text(fresh)
    print(f"wrote {COMMITTED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
