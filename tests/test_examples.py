"""Every script in examples/ runs as written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=dict(os.environ, TMPDIR=str(tmp_path)), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stdout


def test_there_are_examples():
    assert EXAMPLES
