"""The catalog's web pages in a real headless browser (Debian's chromium, driven by Playwright): the server
(`deai-data catalog serve`, a subprocess on a free loopback port, stopped by PID) and the static report render
with no console errors, the search, filters and sorting work, the charts are there; bad requests get 400/404.
The catalog comes from a market scenario on anvil, indexed by deai-indexer."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from chains import Anvil
from market_scenario import Scenario
from web3 import Web3

from deai_indexer import Indexer

pytestmark = pytest.mark.services
CHROMIUM = os.environ.get("DEAI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = os.environ.get("DEAI_SCREENSHOTS")  # a folder: save the pages' screenshots there (for docs/img)


@pytest.fixture(scope="module")
def catalog_root(tmp_path_factory):
    node = Anvil()
    try:
        scenario = Scenario(Web3(Web3.HTTPProvider(node.url)), seed=21)
        scenario.run(datasets=5, purchases=120, versions=2)
        root = tmp_path_factory.mktemp("index")
        Indexer(node.url, scenario.market.address, root, confirmations=0).sync()
        yield root
    finally:
        node.stop()


@pytest.fixture(scope="module")
def server(catalog_root):
    proc = subprocess.Popen([sys.executable, "-m", "deai_data", "catalog", "serve", "--catalog", str(catalog_root),
                             "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line
        yield line.split()[4].rstrip("/")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM, "chromium is not installed: `apt-get install chromium` (make browser-deps)"
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    tab = browser.new_page(viewport={"width": 1200, "height": 900})
    tab.console_errors = []
    tab.on("console", lambda message: tab.console_errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: tab.console_errors.append(str(error)))
    yield tab
    assert tab.console_errors == []
    tab.close()


def shot(page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"catalog-{name}.png"), full_page=True)


def test_market_overview(server, page):
    page.goto(server + "/")
    assert page.title() == "Market"
    assert page.locator("svg[role=img] rect").count() >= 1  # sales per day
    assert page.locator("#top tbody tr").count() >= 3 and page.locator("#owners tbody tr").count() >= 1
    assert page.locator("#totals").inner_text().count("\n") >= 3
    shot(page, "market")


def test_datasets_search_filter_and_sort(server, page):
    page.goto(server + "/datasets")
    rows = page.locator("#datasets tbody tr")
    assert rows.count() == 7  # 5 datasets and 2 new versions
    ids = [int(t) for t in page.locator("#datasets tbody tr td:first-child").all_inner_texts()]
    page.click("#datasets thead a:text('dataset_id')")  # sort by id, descending
    page.wait_for_url("**sort=dataset_id**")
    assert [int(t) for t in page.locator("#datasets tbody tr td:first-child").all_inner_texts()] == sorted(ids)[::-1]
    page.fill("input[name=q]", "3")
    page.click("button:text('Filter')")
    page.wait_for_url("**q=3**")
    assert page.locator("#datasets tbody tr td:first-child").all_inner_texts() == ["3"]
    page.goto(server + "/datasets?status=refused")
    assert page.locator("#datasets tbody tr").count() == 7  # the scenario's manifest URIs are local files
    page.goto(server + "/datasets?license=CC0-1.0")
    assert page.locator("#datasets tbody tr").count() == 7
    page.goto(server + "/datasets?license=MIT")
    assert page.locator("#datasets tbody tr").count() == 0
    page.goto(server + "/datasets?storage=not+probed")  # no probe has run on this catalog
    assert page.locator("#datasets tbody tr").count() == 7
    page.select_option("select[name=storage]", "flagged")
    page.click("button:text('Filter')")
    page.wait_for_url("**storage=flagged**")
    assert page.locator("#datasets tbody tr").count() == 0
    page.goto(server + "/datasets")
    shot(page, "datasets")
    page.click("#datasets tbody tr:first-child a")
    page.wait_for_url("**/datasets/*")
    assert page.locator("#facts").is_visible() and page.locator("#storage").is_visible()


def test_dataset_page(server, page):
    page.goto(server + "/datasets/6")  # the first new version: it supersedes dataset 1
    assert page.locator("#lineage tbody tr").count() == 2
    assert "records_added" in page.locator("#lineage thead").inner_text()  # what each version added
    assert page.locator("p.bad").inner_text().startswith("manifest refused")
    assert page.locator("#record").inner_text().count("purchases") == 1
    assert page.locator("#prices tbody tr").count() >= 1
    busiest = max(range(1, 8), key=lambda i: _purchases(server, page, i))
    page.goto(f"{server}/datasets/{busiest}")
    assert page.locator("svg[role=img] rect").count() >= 1 and page.locator("#buyers tbody tr").count() >= 1
    shot(page, "dataset")


def _purchases(server, page, dataset_id: int) -> int:
    page.goto(f"{server}/datasets/{dataset_id}")
    return len(page.locator("#buyers tbody tr").all())


@pytest.mark.parametrize(("path", "code"), [("/datasets/999", 404), ("/datasets?sort=evil", 400), ("/x", 404)])
def test_bad_requests(server, path, code):
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(server + path, timeout=10)
    assert failure.value.code == code


def test_static_report_filters_in_the_page(catalog_root, tmp_path, page):
    out = tmp_path / "report"
    subprocess.run([sys.executable, "-m", "deai_data", "catalog", "report", "--catalog", str(catalog_root), "--out",
                    str(out)], check=True, capture_output=True, timeout=120)
    assert sorted(p.name for p in out.iterdir())[:3] == ["dataset-1.html", "dataset-2.html", "dataset-3.html"]
    page.goto((out / "datasets.html").as_uri())
    assert page.locator("#datasets tbody tr:visible").count() == 7
    page.fill("input[name=q]", "refused")
    assert page.locator("#datasets tbody tr:visible").count() == 7
    page.fill("input[name=q]", "no such text")
    assert page.locator("#datasets tbody tr:visible").count() == 0
    page.goto((out / "index.html").as_uri())
    page.click("#top tbody tr:first-child a")
    assert page.locator("#facts").is_visible()


def test_what_owners_wrote_is_escaped_and_the_server_binds_loopback(catalog_root):
    """Names and descriptions come from manifests anyone can publish: every value is escaped."""
    from deai_data import Catalog
    from deai_data.catalog.web import bar_chart, make_server, page, table_html
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    html_text = table_html([{"name": hostile, "n": 1}], ["name", "n"], link=lambda row: "javascript:'><x>") + \
        bar_chart([(hostile, 3.0)], title=hostile) + page(hostile, "", lambda name: name)
    assert "<script>alert" not in html_text and "<img src=x" not in html_text and "'><x>" not in html_text
    with Catalog(catalog_root) as catalog:
        server = make_server(catalog, port=0)
        try:
            assert server.server_address[0] == "127.0.0.1"
        finally:
            server.server_close()


def test_a_catalog_older_than_the_pages_says_how_to_rebuild(catalog_root, tmp_path):
    import threading

    import duckdb

    from deai_data import Catalog
    from deai_data.catalog.web import make_server
    old = tmp_path / "old-index"
    shutil.copytree(catalog_root, old)
    con = duckdb.connect(str(old / "catalog.duckdb"))
    con.execute("DROP TABLE dataset_record")
    con.close()
    with Catalog(old) as catalog:
        server = make_server(catalog, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with pytest.raises(urllib.error.HTTPError) as failure:
                urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/datasets/1", timeout=10)
            assert failure.value.code == 500 and b"deai-indexer rebuild" in failure.value.read()
        finally:
            server.shutdown()
            server.server_close()
