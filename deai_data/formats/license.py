"""A dataset's licence, machine-readable: an SPDX licence expression (checked against the SPDX licence list that
`packaging` carries), or the URI of a licence text with the text's SHA-256 (`URI#sha256=HEX`)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

from ..errors import DeaiError, FormatError

_MAX_LENGTH = 256  # bytes: what the market contract records
_REFERENCE = re.compile(r"^(?P<uri>(?:https?|ar|ipfs)://[^\s#]+)#sha256=(?P<sha256>[0-9a-f]{64})$")


@dataclass(frozen=True)
class License:
    """An SPDX expression (`spdx`, canonical spelling), or a licence text at `uri` whose SHA-256 is `sha256`."""

    spdx: str = ""
    uri: str = ""
    sha256: str = ""

    def __str__(self) -> str:
        return self.spdx or f"{self.uri}#sha256={self.sha256}"

    def matches(self, text: bytes) -> bool:
        """Whether `text` is the licence text this reference names (always False for an SPDX expression)."""
        return bool(self.sha256) and hashlib.sha256(text).hexdigest() == self.sha256


def parse_license(text: str) -> License:
    """`text` as a licence; anything else (free text, an unknown SPDX identifier, a URI without its hash) is a
    FormatError that says what is accepted."""
    if not isinstance(text, str) or not text.strip() or len(text.encode()) > _MAX_LENGTH:
        raise FormatError("a licence is an SPDX expression or a URI#sha256=HEX of at most 256 bytes")
    if found := _REFERENCE.match(text.strip()):
        return License(uri=found["uri"], sha256=found["sha256"])
    if "://" in text:
        raise FormatError(f"the licence URI {text!r} is not an http(s)://, ar:// or ipfs:// URI followed by "
                          "#sha256= and the SHA-256 of the licence text",
                          hint="deai-data publish --license URI --license-text FILE (or license_reference(uri, text))")
    try:
        return License(spdx=str(canonicalize_license_expression(text)))
    except InvalidLicenseExpression as exc:
        raise FormatError(f"{text!r} is not an SPDX licence expression: {exc}",
                          hint="an identifier of https://spdx.org/licenses/ (CC-BY-4.0, MIT OR Apache-2.0, "
                               "LicenseRef-...), or a URI#sha256=HEX of the licence text") from None


def canonical_license(text: str, *, field: str, error: type[DeaiError]) -> str:
    """`text` as the canonical licence string ("" stays ""); otherwise `error`, naming `field`."""
    if not text:
        return ""
    try:
        return str(parse_license(text))
    except FormatError as exc:
        raise error(f"{field}: {exc.message}", hint=exc.hint) from None


def license_reference(uri: str, text: bytes) -> str:
    """The licence string for a licence text published at `uri`: `uri#sha256=` its SHA-256 (checked)."""
    return str(parse_license(f"{uri}#sha256={hashlib.sha256(text).hexdigest()}"))
