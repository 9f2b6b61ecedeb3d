"""Notebooks: examples/analyst_notebook.ipynb run in a real Jupyter kernel (ipykernel, driven by nbclient) against a
catalog indexed from a market on anvil: progress bars are HTML redrawn in place, the dataset, SQL results, the
storage report and the catalog's results render as HTML tables. Outside a notebook the bar is a terminal line."""

from __future__ import annotations

import io
from pathlib import Path

import nbformat
import pyarrow as pa
from nbclient import NotebookClient

from deai_data import ProgressBar
from deai_data.display import arrow_html, in_notebook, register_formatters

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "analyst_notebook.ipynb"


def html_outputs(cell) -> list[str]:
    return [o["data"]["text/html"] for o in cell.get("outputs", []) if "text/html" in o.get("data", {})]


def test_the_analyst_notebook_runs_in_a_kernel(anvil, tmp_path, monkeypatch):
    from market_scenario import Scenario

    from deai_data import connect
    from deai_indexer import Indexer
    from deai_indexer.probe import probe_storage
    with anvil.rolled_back():
        scenario = Scenario(connect(anvil.url), seed=5)
        scenario.run(datasets=2, purchases=10, versions=0)
        Indexer(anvil.url, scenario.market.address, tmp_path / "index", confirmations=0).sync()
    probe_storage(tmp_path / "index")
    monkeypatch.setenv("DEAI_CATALOG", str(tmp_path / "index"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    published = html_outputs(code[0])
    assert len(published) == 1 and "<progress value='20000' max='20000'" in published[0]   # redrawn to the end
    assert "Dataset: scores" in html_outputs(code[1])[0]
    sql = html_outputs(code[2])[0]
    assert sql.count("<tr>") == 1 + 7 and "7 rows x 3 columns" in sql
    assert "<progress value='" in html_outputs(code[3])[0]
    assert "every shard fetchable" in html_outputs(code[4])[0]
    top, listed = html_outputs(code[5])
    assert "dataset_id" in top and "storage_flagged" in listed and "2 rows" in listed


def test_outside_a_notebook_the_bar_is_a_terminal_line():
    assert not in_notebook() and not register_formatters()
    stream = io.StringIO()
    stream.isatty = lambda: True  # type: ignore[method-assign]
    with ProgressBar("checking", total=3, unit="shards", stream=stream) as bar:
        for done in range(1, 4):
            bar.update(done)
    assert stream.getvalue().endswith("checking 3/3 shards\n")


def test_arrow_tables_render_escaped_and_bounded():
    table = pa.table({"name": ["<script>x</script>"] * 30, "blob": [b"\x00" * 40] * 30})
    shown = arrow_html(table)
    assert "<script>" not in shown and "&lt;script&gt;" in shown and "&lt;40 bytes&gt;" in shown
    assert shown.count("<tr>") == 1 + 20 and "30 rows x 2 columns (first 20 shown)" in shown
