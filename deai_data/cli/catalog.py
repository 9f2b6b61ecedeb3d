"""`deai-data catalog sql|show|tables|top|serve|report`: the analysts' catalog from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _print_table(table: pa.Table, fmt: str, out: str | None) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq
        if not out:
            raise SystemExit("--format parquet needs --out FILE")
        pq.write_table(table, out)
        print(f"wrote {table.num_rows} rows to {out}")
        return
    if fmt == "csv":
        import pyarrow.csv as pcsv
        sink = pa.BufferOutputStream()
        pcsv.write_csv(table, sink)
        text = sink.getvalue().to_pybytes().decode()
    elif fmt == "json":
        rows = [{k: _jsonable(v) for k, v in row.items()} for row in table.to_pylist()]
        text = json.dumps(rows, indent=1) + "\n"
    else:
        text = _render(table)
    if out:
        with open(out, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


def _render(table: pa.Table, limit: int = 200) -> str:
    names = table.column_names
    shown = table.slice(0, limit).to_pylist()
    rows = [[("" if v is None else str(_jsonable(v))) for v in row.values()] for row in shown]
    widths = [min(48, max([len(n)] + [len(r[i]) for r in rows])) for i, n in enumerate(names)]
    line = lambda cells: "  ".join(c[:w].ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    body = [line(names), line(["-" * w for w in widths])] + [line(r) for r in rows]
    more = [f"... {table.num_rows - limit} more rows (use --format csv|json|parquet for all)"] \
        if table.num_rows > limit else []
    return "\n".join(body + more + [f"({table.num_rows} rows)"]) + "\n"


def cmd_catalog(args: argparse.Namespace) -> int:
    from ..catalog import Catalog

    if args.catalog_command in ("serve", "report"):
        return _web(args)
    fmt = "json" if args.json else args.format
    with Catalog(args.catalog) as catalog:
        if args.catalog_command == "sql":
            table = catalog.sql(args.query)
        elif args.catalog_command == "tables":
            table = pa.table({"table": catalog.tables()})
        elif args.catalog_command == "top":
            table = catalog.top_datasets(args.n)
        else:
            versions = catalog.sql("SELECT * FROM datasets WHERE dataset_id = $1", [args.dataset_id])
            if versions.num_rows == 0:
                from ..errors import CatalogError
                raise CatalogError(f"dataset {args.dataset_id} is not in the catalog",
                                   hint="check the id, or let the indexer catch up (deai-indexer status)")
            if fmt == "table":
                print("\n".join(f"{k:<18} {_jsonable(v)}" for k, v in versions.to_pylist()[0].items()))
                print("\nhistory:")
            table = catalog.dataset_history(args.dataset_id)
        _print_table(table, fmt, args.out)
    return 0


def _web(args: argparse.Namespace) -> int:
    """`serve`: the catalog's pages on a local web server; `report`: the same pages as static files."""
    from ..catalog import Catalog
    from ..catalog.web import make_server, write_report

    with Catalog(args.catalog) as catalog:
        if args.catalog_command == "report":
            files = write_report(catalog, args.out)
            print(json.dumps({"out": args.out, "pages": len(files)}) if args.json else
                  f"wrote {len(files)} pages to {args.out} (open {Path(args.out) / 'index.html'})")
            return 0
        server = make_server(catalog, args.host, args.port)
        url = f"http://{server.server_address[0]!s}:{int(server.server_address[1])}/"
        print(json.dumps({"url": url}) if args.json else f"serving the catalog at {url} (read-only; Ctrl-C stops)",
              flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


def add_catalog_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = command("catalog", "query the market catalog built by deai-indexer (SQL, top datasets, one dataset)")
    actions = p.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help_text, description=help_text)
        a.add_argument("--catalog", help="catalog file, index folder, or a pushed copy (s3://BUCKET/PREFIX) "
                       "(default $DEAI_CATALOG or ./deai-index)")
        a.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
        a.add_argument("--out", help="write to this file instead of stdout (needed for parquet)")
        a.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="same as --format json")
        return a

    action("sql", "run one SQL query (docs/catalog.md lists the tables)").add_argument("query")
    action("tables", "list the catalog's tables")
    action("top", "the top datasets by delivered sales").add_argument("-n", type=int, default=10)
    action("show", "one dataset version: its summary and its history").add_argument("dataset_id", type=int)
    catalog_help = "catalog file, index folder, or a pushed copy (default $DEAI_CATALOG or ./deai-index)"
    serve = actions.add_parser("serve", help="the catalog as web pages on a local, read-only server",
                               description="the catalog as web pages on a local, read-only server")
    serve.add_argument("--catalog", help=catalog_help)
    serve.add_argument("--json", action="store_true", help="print the address as JSON")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8040, help="port (default 8040; 0 picks a free one)")
    report = actions.add_parser("report", help="the catalog's pages as static HTML files",
                                description="the catalog's pages as static HTML files")
    report.add_argument("--catalog", help=catalog_help)
    report.add_argument("--json", action="store_true", help="print what was written as JSON")
    report.add_argument("--out", required=True, help="folder to write index.html, datasets.html, dataset-N.html")
    p.set_defaults(func=cmd_catalog)
