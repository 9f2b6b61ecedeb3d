"""The catalog as web pages: the market at a glance, the datasets (search, filters, sorting) and one page per
dataset version (lineage, sales over time, buyers, prices, storage status, the owner's delivery record).

Rendered on the server from the catalog's SQL, with inline SVG charts and no script library; served read-only
(`serve`, on 127.0.0.1 by default) or written as static files (`write_report`). Every value is HTML-escaped.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Sequence
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import CatalogError, UsageError
from .reader import Catalog

_CURRENT_OWNER = """owner AS (SELECT token_id AS dataset_id, arg_max("to", (block_number, log_index)) AS owner
                  FROM raw.transfer GROUP BY ALL)"""
SORTABLE = ("dataset_id", "name", "owner", "license_uri", "manifest_status", "storage", "records", "sealed_size",
            "registered_at", "sales", "gross")
_STYLE = """body{font:14px system-ui,sans-serif;margin:0;color:#222}header{background:#1f3a5f;color:#fff;
padding:10px 20px}header a{color:#fff;margin-right:16px;text-decoration:none}main{padding:16px 20px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
th a{color:inherit}.num{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#b00020;font-weight:600}
.ok{color:#1b7f3b}form{margin:8px 0}input,select{margin-right:8px}svg{background:#fafafa;border:1px solid #eee}
code{font-size:12px}"""
# In a static report the search box filters the rows in the page (a server filters them itself)
_FILTER = """document.querySelectorAll('input[data-filter]').forEach(function(box){box.addEventListener('input',
function(){var q=box.value.toLowerCase();document.querySelectorAll(box.dataset.filter+' tbody tr').forEach(
function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});});});"""


class PageNotFound(CatalogError):
    """No such page (an unknown dataset id)."""


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return f"{value:,.0f}" if value == value.to_integral_value() else str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="seconds") if hasattr(value, "hour") else value.isoformat()
    return str(value)


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    return f"<td{' class=num' if numeric else ''}>{html.escape(_text(value))}</td>"


def table_html(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, table_id: str = "",
               link: Callable[[dict[str, Any]], str] | None = None, headers: Sequence[str] | None = None) -> str:
    """Rows as an HTML table; `link(row)` makes the first cell a link; `headers` are already-made header cells."""
    head = "".join(headers) if headers else "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = [_cell(row.get(c)) for c in columns]
        if link is not None and cells:
            cells[0] = f"<td><a href='{html.escape(link(row))}'>{html.escape(_text(row.get(columns[0])))}</a></td>"
        body.append(f"<tr>{''.join(cells)}</tr>")
    ident = f" id='{table_id}'" if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def bar_chart(points: Sequence[tuple[str, float]], *, title: str, width: int = 720, height: int = 180) -> str:
    """An inline SVG bar chart (one bar per point, its label and value in a tooltip)."""
    if not points:
        return f"<p>{html.escape(title)}: nothing yet.</p>"
    top = max(v for _, v in points) or 1.0
    step = min(width / len(points), 40.0)
    bars = []
    for i, (label, value) in enumerate(points):
        h = (height - 20) * value / top
        bars.append(f"<rect x='{i * step + 1:.1f}' y='{height - h:.1f}' width='{max(step - 2, 1):.1f}' "
                    f"height='{h:.1f}' fill='#2f6db5'><title>{html.escape(label)}: {value:,.0f}</title></rect>")
    return (f"<figure><figcaption>{html.escape(title)} (highest {top:,.0f})</figcaption>"
            f"<svg role='img' aria-label='{html.escape(title)}' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}'>{''.join(bars)}</svg></figure>")


def page(title: str, body: str, nav: Callable[[str], str]) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<link rel='icon' href='data:,'><style>{_STYLE}</style></head><body><header>"
            f"<a href='{nav('index')}'>Market</a><a href='{nav('datasets')}'>Datasets</a></header>"
            f"<main><h1>{html.escape(title)}</h1>{body}</main>"
            f"<script>{_FILTER}</script></body></html>")


class Pages:
    """The pages of one catalog. `static=True` links to files (`dataset-42.html`), else to a server's paths."""

    def __init__(self, catalog: Catalog, *, static: bool = False) -> None:
        self.catalog = catalog
        self.static = static
        self.lock = threading.Lock()  # one DuckDB connection: one query at a time

    def nav(self, name: str) -> str:
        return f"{name}.html" if self.static else ("/" if name == "index" else f"/{name}")

    def dataset_link(self, row: dict[str, Any]) -> str:
        ident = int(row["dataset_id"])
        return f"dataset-{ident}.html" if self.static else f"/datasets/{ident}"

    def _rows(self, query: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.catalog.sql(query, params).to_pylist())

    # ---- the market ---------------------------------------------------------------------------------
    def overview(self) -> str:
        totals = self._rows("SELECT (SELECT count(*) FROM versions) AS versions, "
                            "(SELECT count(*) FROM raw.purchased) AS purchases, "
                            "(SELECT count(*) FROM raw.purchase_settled) AS settled, "
                            "(SELECT count(*) FROM raw.refunded) AS refunded, "
                            "(SELECT derived_block FROM derived_state) AS derived_to_block")[0]
        volume = self._rows("SELECT strftime(day, '%Y-%m-%d') AS day, sum(sales) AS sales FROM market_daily "
                            "GROUP BY ALL ORDER BY day DESC LIMIT 90")[::-1]
        top = self.catalog.top_datasets(10).to_pylist()
        owners = self._rows(f"""WITH {_CURRENT_OWNER}
            SELECT coalesce(o.owner, v.registered_owner) AS owner, s.payment_token, sum(s.sales) AS sales,
                   sum(s.owner_revenue) AS earned
            FROM dataset_sales s JOIN versions v USING (dataset_id) LEFT JOIN owner o USING (dataset_id)
            GROUP BY ALL ORDER BY earned DESC, owner LIMIT 10""")
        facts = "".join(f"<tr><th>{k}</th>{_cell(v)}</tr>" for k, v in totals.items())
        body = (f"<table id='totals'>{facts}</table>"
                + bar_chart([(r["day"], float(r["sales"])) for r in volume], title="settled sales per day")
                + "<h2>Top datasets (settled gross)</h2>"
                + table_html(top, ["dataset_id", "name", "payment_token", "sales", "gross", "owner_revenue"],
                             table_id="top", link=self.dataset_link)
                + "<h2>Top owners (settled sales of the datasets they hold)</h2>"
                + table_html(owners, ["owner", "payment_token", "sales", "earned"], table_id="owners"))
        return page("Market", body, self.nav)

    # ---- the datasets -------------------------------------------------------------------------------
    def datasets(self, query: dict[str, str] | None = None) -> str:
        query = query or {}
        search, status, licence = query.get("q", ""), query.get("status", ""), query.get("license", "")
        storage = query.get("storage", "")
        sort, order = query.get("sort", "gross"), query.get("order", "desc")
        if sort not in SORTABLE or order not in ("asc", "desc"):
            raise UsageError(f"sort by one of {', '.join(SORTABLE)}, order asc or desc")
        rows = self._rows(f"""
            WITH {_CURRENT_OWNER},
                 sales AS (SELECT dataset_id, sum(sales) AS sales, sum(gross) AS gross FROM dataset_sales GROUP BY ALL)
            SELECT v.dataset_id, v.name, coalesce(o.owner, v.registered_owner) AS owner, v.license_uri,
                   v.manifest_status, CASE WHEN h.flagged THEN 'flagged' WHEN NOT h.flagged THEN 'ok'
                                           ELSE 'not probed' END AS storage,
                   v.records, v.sealed_size, v.registered_at, coalesce(s.sales, 0) AS sales,
                   coalesce(s.gross, 0) AS gross
            FROM versions v LEFT JOIN owner o USING (dataset_id) LEFT JOIN sales s USING (dataset_id)
            LEFT JOIN storage_health h USING (manifest_hash)
            WHERE ($1 = '' OR v.name ILIKE '%' || $1 || '%' OR CAST(v.dataset_id AS VARCHAR) = $1
                   OR coalesce(o.owner, v.registered_owner) = lower($1))
              AND ($2 = '' OR v.manifest_status = $2) AND ($3 = '' OR v.license_uri = $3)
              AND ($4 = '' OR storage = $4)
            ORDER BY {sort} {order} NULLS LAST, v.dataset_id LIMIT 1000""", [search, status, licence, storage])
        statuses = [r["s"] for r in self._rows("SELECT DISTINCT manifest_status AS s FROM versions "
                                               "WHERE s IS NOT NULL ORDER BY 1")]
        licences = [r["s"] for r in self._rows("SELECT DISTINCT license_uri AS s FROM versions "
                                               "WHERE s IS NOT NULL AND s <> '' ORDER BY 1")]

        def options(name: str, values: list[str], chosen: str) -> str:
            items = "".join(f"<option{' selected' if v == chosen else ''}>{html.escape(v)}</option>" for v in values)
            return f"<select name='{name}'><option value=''>any {name}</option>{items}</select>"

        def header(column: str) -> str:
            flip = "asc" if (column == sort and order == "desc") else "desc"
            if self.static:
                return f"<th>{column}</th>"
            return (f"<th><a href='?q={html.escape(search)}&status={html.escape(status)}&license="
                    f"{html.escape(licence)}&storage={html.escape(storage)}&sort={column}&order={flip}'>{column}</a>"
                    "</th>")

        form = ("<form method='get'><input name='q' placeholder='name, id or owner' data-filter='#datasets' "
                f"value='{html.escape(search)}'>{options('status', statuses, status)}"
                f"{options('license', licences, licence)}"
                f"{options('storage', ['ok', 'flagged', 'not probed'], storage)}"
                f"<input type='hidden' name='sort' value='{sort}'>"
                f"<input type='hidden' name='order' value='{order}'><button>Filter</button></form>")
        body = form + f"<p>{len(rows)} versions</p>" + table_html(
            rows, SORTABLE, table_id="datasets", link=self.dataset_link, headers=[header(c) for c in SORTABLE])
        return page("Datasets", body, self.nav)

    def dataset(self, dataset_id: int) -> str:
        found = self._rows(f"""WITH {_CURRENT_OWNER},
                price AS (SELECT arg_max(new_price, (block_number, log_index)) AS price FROM raw.price_changed
                          WHERE dataset_id = $1),
                paused AS (SELECT arg_max(paused, (block_number, log_index)) AS paused FROM raw.sales_paused
                           WHERE dataset_id = $1)
            SELECT v.*, coalesce(o.owner, v.registered_owner) AS owner,
                   coalesce((SELECT price FROM price), v.initial_price) AS price,
                   coalesce((SELECT paused FROM paused), false) AS paused
            FROM versions v LEFT JOIN owner o USING (dataset_id) WHERE v.dataset_id = $1""", [dataset_id])
        if not found:
            raise PageNotFound(f"dataset {dataset_id} is not in the catalog")
        version = found[0]
        # the derived tables (DuckDB storage, sorted by dataset): milliseconds even for the busiest dataset
        record = self._rows("""
            SELECT r.purchases, r.delivered, r.settled, r.refunded, r.disputed, r.disputes_lost, r.buyers,
                   (SELECT sum(owner_revenue) FROM dataset_sales WHERE dataset_id = $1) AS owner_revenue,
                   (SELECT sum(fees) FROM dataset_sales WHERE dataset_id = $1) AS fees,
                   (SELECT derived_block FROM derived_state) AS as_of_block
            FROM (SELECT $1 AS dataset_id) d LEFT JOIN dataset_record r USING (dataset_id)""", [dataset_id])[0]
        sales = self._rows("SELECT strftime(day, '%Y-%m-%d') AS day, sales FROM dataset_daily WHERE dataset_id = $1 "
                           "ORDER BY day", [dataset_id])
        prices = self._rows("SELECT block_time, 'registered' AS event, price FROM raw.dataset_registered "
                            "WHERE dataset_id = $1 UNION ALL SELECT block_time, 'price_changed', new_price "
                            "FROM raw.price_changed WHERE dataset_id = $1 ORDER BY block_time", [dataset_id])
        buyers = self._rows("SELECT buyer, purchases, paid FROM dataset_buyers WHERE dataset_id = $1 "
                            "ORDER BY purchases DESC, buyer LIMIT 20", [dataset_id])
        lineage = self._lineage(dataset_id)
        paid = self._rows("""SELECT role, account, payment_token, count(*) AS sales, sum(amount) AS amount
                             FROM earnings WHERE dataset_id = $1 GROUP BY ALL ORDER BY amount DESC""", [dataset_id])
        split = self._rows("""SELECT unnest(payees) AS payee, unnest(shares_bps) AS share_bps, locked
                              FROM revenue_splits WHERE dataset_id = $1""", [dataset_id])
        royalty = self._rows("SELECT receiver, royalty_bps FROM royalties WHERE dataset_id = $1 AND royalty_bps > 0",
                             [dataset_id])
        plan = self._rows("SELECT price, term_s FROM subscription_plans WHERE dataset_id = $1", [dataset_id])
        subscriptions = self._rows("""SELECT subscription_id, subscriber, price, expires_at, renews, claims, status
                                      FROM subscriptions WHERE dataset_id = $1 ORDER BY subscription_id DESC
                                      LIMIT 20""", [dataset_id])
        ok = version["manifest_status"] == "ok" and version["manifest_matches"]
        storage = [{"backends": ", ".join(version.get("backends") or []) or "-",
                    "manifest": version["manifest_status"], "matches the chain": version["manifest_matches"],
                    "shards": version.get("manifest_shards")}]
        probed = self._rows("SELECT backend, status, objects, available, pending, missing, altered, unchecked, "
                            "hashed, min_confirmations, probed_at FROM storage_status WHERE manifest_hash = $1 "
                            "ORDER BY backend", [version["manifest_hash"]])
        health = self._rows("SELECT flagged, shards_fetchable, shards_checked, shards_altered, manifest_state "
                            "FROM storage_health WHERE manifest_hash = $1", [version["manifest_hash"]])
        facts = ["dataset_id", "name", "owner", "author", "price", "payment_token", "paused", "license_uri",
                 "records", "sealed_size", "manifest_hash", "registered_at"]
        status = ("<p class='ok'>manifest stored and matching its registration</p>" if ok else
                  f"<p class='bad'>manifest {html.escape(_text(version['manifest_status']))}: "
                  f"{html.escape(_text(version.get('manifest_error')))}</p>")
        if not health:
            status += "<p id='probe'>not probed yet (<code>deai-indexer probe</code>)</p>"
        elif health[0]["flagged"]:
            h = health[0]
            status += (f"<p id='probe' class='bad'>flagged: {h['shards_fetchable']} of {h['shards_checked']} shards "
                       f"fetchable, {h['shards_altered']} with an altered copy (manifest "
                       f"{html.escape(_text(h['manifest_state']))})</p>")
        else:
            status += "<p id='probe' class='ok'>every shard fetchable at the last probe</p>"
        about = f"<p>{html.escape(version['description'])}</p>" if version.get("description") else ""
        body = (about + "<table id='facts'>"
                + "".join(f"<tr><th>{k}</th>{_cell(version.get(k))}</tr>" for k in facts)
                + "</table><h2>Storage</h2>" + status + table_html(storage, list(storage[0]), table_id="storage")
                + (table_html(probed, list(probed[0]), table_id="backends") if probed else "")
                + "<h2>Versions</h2>" + table_html(lineage, ["dataset_id", "name", "registered_at", "supersedes",
                                                              "records", "records_added", "sealed_size",
                                                              "inherited_shards", "stored_size"],
                                                    table_id="lineage", link=self.dataset_link)
                + "<h2>Sales</h2>" + bar_chart([(r["day"], float(r["sales"])) for r in sales],
                                               title="settled sales per day")
                + "<h2>Subscriptions</h2>"
                + (f"<p id='plan'>A {plan[0]['term_s'] / 86_400:g}-day term of every new version: "
                   f"{_text(plan[0]['price'])}</p>" if plan else "<p id='plan'>No subscriptions sold.</p>")
                + table_html(subscriptions, ["subscription_id", "subscriber", "price", "expires_at", "renews", "claims",
                                             "status"], table_id="subscriptions")
                + "<h2>Who gets paid</h2>" + self._payees(split, royalty)
                + table_html(paid, ["role", "account", "payment_token", "sales", "amount"], table_id="earnings")
                + "<h2>Delivery record</h2>" + "<table id='record'>"
                + "".join(f"<tr><th>{k}</th>{_cell(v)}</tr>" for k, v in record.items()) + "</table>"
                + "<h2>Price history</h2>" + table_html(prices, ["block_time", "event", "price"], table_id="prices")
                + "<h2>Buyers</h2>" + table_html(buyers, ["buyer", "purchases", "paid"], table_id="buyers"))
        return page(f"{version['name'] or 'dataset'} (#{dataset_id})", body, self.nav)

    @staticmethod
    def _payees(split: list[dict[str, Any]], royalty: list[dict[str, Any]]) -> str:
        """The revenue split new sales follow (or the owner) and the ERC-2981 royalty, as a paragraph and a table."""
        text = ("<p>New sales pay the owner.</p>" if not split else
                "<p>New sales are split" + (" (locked for good):" if split[0]["locked"] else ":") + "</p>"
                + table_html(split, ["payee", "share_bps"], table_id="split"))
        if royalty:
            text += (f"<p id='royalty'>Royalty on resales of the token (ERC-2981): {royalty[0]['royalty_bps']} bps "
                     f"to {html.escape(_text(royalty[0]['receiver']))}</p>")
        return text

    def _lineage(self, dataset_id: int) -> list[dict[str, Any]]:
        """Every version linked to this one through `supersedes` (back to the first, on to the newest), oldest
        first, with how many records each added to the version it replaces and what it stored anew (the rest it
        inherits: shards an earlier version stored)."""
        return self._rows("""
            WITH RECURSIVE back(id) AS (
                    SELECT $1::BIGINT UNION SELECT nullif(r.supersedes, 0) FROM raw.dataset_registered r
                    JOIN back ON r.dataset_id = back.id),
                 later(id) AS (
                    SELECT $1::BIGINT UNION SELECT r.dataset_id FROM raw.dataset_registered r
                    JOIN later ON r.supersedes = later.id)
            SELECT v.dataset_id, v.name, v.registered_at, v.supersedes, v.records,
                   v.records - p.records AS records_added, v.sealed_size, v.inherited_shards, v.stored_size
            FROM versions v LEFT JOIN versions p ON p.dataset_id = nullif(v.supersedes, 0)
            WHERE v.dataset_id IN (SELECT id FROM back UNION SELECT id FROM later)
            ORDER BY v.registered_block, v.dataset_id""", [dataset_id])

    def dataset_ids(self) -> list[int]:
        return [int(r["dataset_id"]) for r in self._rows("SELECT dataset_id FROM versions ORDER BY 1")]


def write_report(catalog: Catalog, folder: str | Path) -> list[Path]:
    """The pages as static HTML files in `folder` (index.html, datasets.html, dataset-<id>.html)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    pages = Pages(catalog, static=True)
    written = {"index.html": pages.overview(), "datasets.html": pages.datasets()}
    written.update({f"dataset-{i}.html": pages.dataset(i) for i in pages.dataset_ids()})
    for name, text in written.items():
        (out / name).write_text(text, encoding="utf-8")
    return [out / name for name in written]


def make_server(catalog: Catalog, host: str = "127.0.0.1", port: int = 8040) -> ThreadingHTTPServer:
    """A read-only HTTP server of the pages (`serve_forever()` to run it)."""
    pages = Pages(catalog)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            try:
                if parts.path == "/":
                    body, code = pages.overview(), 200
                elif parts.path == "/datasets":
                    body, code = pages.datasets(query), 200
                elif parts.path.startswith("/datasets/") and parts.path[10:].isdigit():
                    body, code = pages.dataset(int(parts.path[10:])), 200
                else:
                    body, code = page("Not found", "<p>No such page.</p>", pages.nav), 404
            except UsageError as exc:
                body, code = page("Bad request", f"<p>{html.escape(exc.message)}</p>", pages.nav), 400
            except PageNotFound as exc:
                body, code = page("Not found", f"<p>{html.escape(exc.message)}</p>", pages.nav), 404
            except CatalogError as exc:  # a catalog older than these pages lacks their derived tables
                body, code = page("Catalog error", f"<p>{html.escape(str(exc))}</p><p>A catalog built by an older "
                                  "indexer lacks tables these pages read: <code>deai-indexer rebuild</code>.</p>",
                                  pages.nav), 500
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                             "script-src 'unsafe-inline'; img-src 'self' data:")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints the address
            pass

    return ThreadingHTTPServer((host, port), Handler)
