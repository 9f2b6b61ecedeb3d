"""Draw the recorded benchmark figures (bench/results/*.json) as PNG charts for docs/benchmarks.md.

    .venv/bin/python bench/plots.py [--out docs/img]

Each results file holds what one benchmark printed in a recorded run (the command, date and machine
are in the file) as panels of labelled bars. Each PNG carries the SHA-256 of its results file in a
`Source-SHA256` text chunk, so a test can tell a stale chart from a current one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

HERE = Path(__file__).resolve().parent
OURS = ("deai-data", "deai-indexer")


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def draw(results: Path, out: Path) -> Path:
    doc = json.loads(results.read_text())
    panels = doc["panels"]
    figure = Figure(figsize=(6.4, 1.2 + 0.42 * sum(len(p["bars"]) for p in panels) + 0.5 * len(panels)), dpi=100)
    axes_list = figure.subplots(len(panels), 1, squeeze=False,
                                height_ratios=[len(p["bars"]) for p in panels])[:, 0]
    for axes, panel in zip(axes_list, panels, strict=True):
        labels, values = list(panel["bars"]), list(panel["bars"].values())
        colours = ["#3b6ea5" if any(mark in label for mark in OURS) else "#b0b0b0" for label in labels]
        axes.barh(labels, values, color=colours)
        axes.invert_yaxis()
        if panel.get("log"):
            axes.set_xscale("log")
            axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_title(panel["title"], fontsize=10, loc="left")
        axes.set_xlabel(panel["unit"], fontsize=9)
        axes.tick_params(labelsize=8)
        for y, value in enumerate(values):
            axes.text(value, y, f" {value:,}", va="center", fontsize=8)
        axes.margins(x=0.18)
    figure.suptitle(doc["benchmark"], fontsize=10, wrap=True)
    figure.text(0.01, 0.005, f"measured {doc['measured']} on {doc['machine']}; blue: deai-data", fontsize=7,
                color="#555555")
    figure.tight_layout(rect=(0, 0.02, 1, 1))
    target = out / f"bench-{results.stem}.png"
    figure.savefig(target, metadata={"Software": None, "Source-SHA256": source_digest(results)})
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "img", help="folder for the PNGs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for results in sorted((HERE / "results").glob("*.json")):
        print(draw(results, args.out))


if __name__ == "__main__":
    main()
