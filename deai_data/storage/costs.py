"""What storing a number of bytes costs over a term on each paid backend: Arweave (once, quoted by a gateway),
Filecoin PDP (monthly, from FilecoinWarmStorageService's `getServicePrice`), S3 (monthly, a list price). Live
quotes are remembered in DEAI_HOME/prices.json; offline, the last one stands in and says when it was taken.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..errors import DeaiError, StorageError, UsageError
from ..home import deai_home

TIB = 1 << 40
GB = 10**9
WINSTON_PER_AR = 10**12
USDFC_DECIMALS = 18
FILECOIN_DEFAULT_PER_TIB_MONTH = Decimal("2.5")
"""USDFC per TiB per month: the default storage price in the Filecoin services specification (FilOzone)."""
S3_LIST_PRICE_PER_GB_MONTH = Decimal("0.023")
"""USD per GB-month: AWS S3 Standard in us-east-1, first 50 TB (aws.amazon.com/s3/pricing); other providers and
tiers differ: pass your own."""
GET_SERVICE_PRICE = "0x5482bdf9"  # bytes4(keccak256("getServicePrice()"))
BACKENDS = ("arweave", "filecoin", "s3")


@dataclass(frozen=True)
class Quote:
    """One backend's cost for `size` bytes over `months`: `total` for the whole term in `unit` (None when no
    price is known), `per_month` for recurring payments; `source` says where the price came from, `live` whether
    it was asked of the service just now."""

    backend: str
    payment: str
    size: int
    months: float
    total: Decimal | None
    per_month: Decimal | None
    unit: str
    source: str
    live: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def text(d: Decimal | None) -> str | None:
            return None if d is None else f"{d.normalize():f}"
        return {"backend": self.backend, "payment": self.payment, "bytes": self.size, "months": self.months,
                "total": text(self.total), "per_month": text(self.per_month), "unit": self.unit,
                "source": self.source, "live": self.live, **self.detail}


# ---- remembered quotes ----------------------------------------------------------------------------------
def _prices_file() -> Any:
    return deai_home() / "prices.json"


def _recall(key: str) -> dict[str, Any] | None:
    try:
        found = json.loads(_prices_file().read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) else None


def _remember(key: str, doc: dict[str, Any]) -> None:
    path = _prices_file()
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    known[key] = {**doc, "at": int(time.time())}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".prices.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a quote not remembered costs nothing now


def _taken(doc: dict[str, Any]) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(doc.get("at", 0)))


# ---- Arweave: once ----------------------------------------------------------------------------------------
def arweave_quote(size: int, gateways: Sequence[str], months: float = 0, *, offline: bool = False) -> Quote:
    """The gateway's `/price/{size}` (winston, paid once for permanent storage: the same for any term of
    `months`); offline or when no gateway answers, the last remembered quote scaled to `size` (the price is close
    to linear in size)."""
    from .arweave import GatewayClient

    failure = "offline"
    if not offline:
        try:
            client = GatewayClient(list(gateways))
            winston = client.price(size)
            _remember("arweave", {"bytes": size, "winston": winston, "gateway": client.gateways[0]})
            return _arweave(size, months, winston, f"quoted by {client.gateways[0]}", True)
        except DeaiError as exc:
            failure = f"no gateway answered ({type(exc).__name__})"
    last = _recall("arweave")
    if last is None or not last.get("bytes"):
        return Quote("arweave", "once", size, months, None, None, "AR", f"{failure}; no earlier quote to go by",
                     False)
    winston = int(Decimal(last["winston"]) * size / int(last["bytes"]))
    return _arweave(size, months, winston, f"{failure}: scaled from {last['gateway']}'s quote of {last['bytes']} bytes "
                                   f"on {_taken(last)}", False)


def _arweave(size: int, months: float, winston: int, source: str, live: bool) -> Quote:
    return Quote("arweave", "once", size, months, Decimal(winston) / WINSTON_PER_AR, None, "AR", source, live,
                 {"winston": winston})


# ---- Filecoin PDP: monthly -------------------------------------------------------------------------------
def _service_price(rpc: str, service: str) -> tuple[int, int]:
    """(price per TiB per month, minimum per month), in the token's base units, from the contract."""
    from .http import HttpStore

    http = HttpStore(retries=2)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                       "params": [{"to": service, "data": GET_SERVICE_PRICE}, "latest"]}).encode()
    answer = http.json(http.request("POST", rpc, {"Content-Type": "application/json"}, body=body), limit=1 << 16)
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, str) or not result.startswith("0x"):
        raise StorageError("getServicePrice() was not answered", locator=rpc,
                           hint="check --filecoin-rpc and --warm-storage (the FilecoinWarmStorageService address)")
    data = bytes.fromhex(result[2:])
    words = [int.from_bytes(data[i:i + 32], "big") for i in range(0, len(data), 32)]
    if len(words) == 6:   # (storage price, CDN egress, cache-miss egress, token, epochs per month, minimum)
        return words[0], words[5]
    if len(words) == 4:   # earlier releases: (price without CDN, price with CDN, token, epochs per month)
        return words[0], 0
    raise StorageError(f"getServicePrice() answered {len(data)} bytes, not a ServicePricing", locator=service)


def filecoin_quote(size: int, months: float, *, rpc: str | None = None, service: str | None = None,
                   offline: bool = False) -> Quote:
    """Monthly storage of one copy through FilecoinWarmStorageService: size x price per TiB (at least the
    service's minimum), from the contract when `rpc` and `service` are given; else the last remembered price,
    else the specification's default. Per-operation fees and CDN egress are not included."""
    failure = "no --filecoin-rpc/--warm-storage given" if not (rpc and service) else "offline"
    if rpc and service and not offline:
        try:
            price, minimum = _service_price(rpc, service)
            _remember("filecoin", {"price": price, "minimum": minimum, "service": service})
            return _filecoin(size, months, price, minimum, f"getServicePrice() of {service}", True)
        except DeaiError as exc:
            failure = f"the service price could not be read ({type(exc).__name__})"
    last = _recall("filecoin")
    if last is not None:
        return _filecoin(size, months, int(last["price"]), int(last.get("minimum", 0)),
                         f"{failure}: getServicePrice() of {last.get('service')} on {_taken(last)}", False)
    default = int(FILECOIN_DEFAULT_PER_TIB_MONTH * 10**USDFC_DECIMALS)
    return _filecoin(size, months, default, 0, f"{failure}: the specification's default price", False)


def _filecoin(size: int, months: float, price: int, minimum: int, source: str, live: bool) -> Quote:
    monthly = max(Decimal(size) * price / TIB, Decimal(minimum)) / 10**USDFC_DECIMALS
    return Quote("filecoin", "monthly", size, months, monthly * Decimal(str(months)), monthly, "USDFC", source, live,
                 {"price_per_tib_month": f"{Decimal(price) / 10**USDFC_DECIMALS:f}"})


# ---- S3: monthly -----------------------------------------------------------------------------------------
def s3_quote(size: int, months: float, *, usd_per_gb_month: Decimal | None = None) -> Quote:
    """Monthly storage at `usd_per_gb_month` (default: AWS S3 Standard's list price). S3 has no price endpoint
    that works without the provider's own account: the price is given, never queried. Requests and egress are
    not included."""
    price = S3_LIST_PRICE_PER_GB_MONTH if usd_per_gb_month is None else usd_per_gb_month
    source = ("AWS S3 Standard list price, us-east-1, first 50 TB" if usd_per_gb_month is None
              else "the price given (--s3-price)")
    monthly = Decimal(size) / GB * price
    return Quote("s3", "monthly", size, months, monthly * Decimal(str(months)), monthly, "USD", source, False,
                 {"usd_per_gb_month": f"{price:f}"})


def compare(size: int, months: float, *, backends: Sequence[str] = BACKENDS, gateways: Sequence[str] = (),
            filecoin_rpc: str | None = None, warm_storage: str | None = None,
            s3_price: Decimal | None = None, offline: bool = False) -> list[Quote]:
    """A quote per backend for `size` bytes kept `months` months."""
    if size < 0 or months <= 0 or months > 1200:
        raise UsageError("size must be at least 0 and months between 0 and 1200")
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise UsageError(f"unknown backend {sorted(unknown)[0]!r}; choose from {', '.join(BACKENDS)}")
    quotes = {"arweave": lambda: arweave_quote(size, gateways, months, offline=offline),
              "filecoin": lambda: filecoin_quote(size, months, rpc=filecoin_rpc, service=warm_storage,
                                                 offline=offline),
              "s3": lambda: s3_quote(size, months, usd_per_gb_month=s3_price)}
    return [quotes[b]() for b in BACKENDS if b in backends]
