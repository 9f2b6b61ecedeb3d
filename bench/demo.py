"""Wall time of the README's main job, `deai-data demo` (goal: under 2 minutes on this machine), from a
fresh process each time so imports count, with the time of `python -c pass` as the floor.

    .venv/bin/python bench/demo.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLI = Path(sys.executable).parent / "deai-data"
GOAL_S = 120.0


def wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    demo = [wall([str(CLI), "demo", "--json"]) for _ in range(args.runs)]
    floor = [wall([sys.executable, "-c", "pass"]) for _ in range(args.runs)]
    result = {"demo_s": demo, "python_start_s": floor, "median_demo_s": statistics.median(demo),
              "goal_s": GOAL_S, "share_of_goal": statistics.median(demo) / GOAL_S}
    print(f"deai-data demo: median {result['median_demo_s']:.1f} s over {args.runs} runs "
          f"({min(demo):.1f}-{max(demo):.1f} s); goal {GOAL_S:.0f} s: {result['share_of_goal']:.0%} of it; "
          f"python start {statistics.median(floor):.2f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
