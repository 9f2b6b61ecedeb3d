"""The manifest: a canonical JSON document describing one dataset version; its SHA-256 is its identity.

`Manifest.from_bytes` checks limits, canonical form, every field's type and internal consistency (shard
indices, sizes, record counts, the content root), naming the bad field in a `ManifestError`. Version 2
adds the author's signature and a BLAKE3 digest per shard; version 1 stays readable (unsigned). Version 3
adds a lineage: shards inherited, sealed as they were, from earlier versions whose keys this version's opens.
"""

from __future__ import annotations

import base64
import binascii
import html
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from ..crypto.authorship import MAX_SIGNATURE_SIZE, Authorship, is_address, recover_author
from ..crypto.sealing import check_segment_size, sealed_size
from ..errors import LimitError, ManifestError
from . import canonical
from . import limits as limits_
from .merkle import merkle_root

FORMAT = "deai-data/manifest"
VERSION = 2
LINEAGE_VERSION = 3  # written only by a version that inherits earlier versions' shards
VERSIONS = (1, 2, 3)
ENCRYPTION_SCHEME = "aes-256-gcm-hkdf-sha256-stream/v1"
SHARD_TYPE = "arrow-ipc-file"


@dataclass(frozen=True)
class ShardEntry:
    """One sealed shard: its place, sizes, the SHA-256 (and, from version 2, BLAKE3) of its sealed bytes, and
    where to fetch it."""

    index: int
    records: int
    plaintext_size: int
    sealed_size: int
    sha256: str
    locators: tuple[str, ...]
    blake3: str | None = None
    origin: tuple[int, int] | None = None
    """(generation, index): a shard inherited from `Lineage.generations[generation - 1]`, where it was sealed as
    shard `index` (None: sealed by this version)."""

    def to_dict(self, version: int = VERSION) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "index": self.index,
            "records": self.records,
            "plaintext_size": self.plaintext_size,
            "sealed_size": self.sealed_size,
            "sha256": self.sha256,
            "locators": list(self.locators),
        }
        if version >= 2:
            doc["blake3"] = self.blake3
        if version >= LINEAGE_VERSION:
            doc["origin"] = None if self.origin is None else {"generation": self.origin[0], "index": self.origin[1]}
        return doc


@dataclass(frozen=True)
class Generation:
    """An earlier version whose sealed shards a version inherits: its seal id and key commitment (as registered
    on-chain) and the link from its key to the next earlier generation's (None for the last one)."""

    seal_id: str
    key_commitment: str
    key_link: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"seal_id": self.seal_id, "key_commitment": self.key_commitment, "key_link": self.key_link}


@dataclass(frozen=True)
class Lineage:
    """How a version's data key opens the earlier versions it inherits shards from: `key_link` leads from this
    version's key to `generations[0]`'s (the previous version), each generation's own link to the next
    (`deai_data.crypto.keys.linked_key`). The link is registered on-chain, so a dispute can check it."""

    key_link: str
    generations: tuple[Generation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"key_link": self.key_link, "generations": [g.to_dict() for g in self.generations]}


@dataclass(frozen=True)
class Manifest:
    """A dataset version. Build with the constructor, serialise with `to_bytes`, hash with `hash`.

    `seal_id` is the random id bound into every shard's AEAD and the key commitment (version 1 called it
    `dataset_id`); `previous_manifest` the manifest hash of the version this one follows; `authorship` the
    author's signed claim (None: unsigned).
    """

    seal_id: str
    name: str
    schema: pa.Schema
    records: int
    segment_size: int
    key_commitment: str
    shards: tuple[ShardEntry, ...]
    content_root: str
    description: str = ""
    license: str = ""
    compression: str | None = None
    previous_manifest: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    authorship: Authorship | None = None
    lineage: Lineage | None = None
    version: int = VERSION

    # ---- derived -------------------------------------------------------------------------------
    @property
    def plaintext_size(self) -> int:
        return sum(s.plaintext_size for s in self.shards)

    @property
    def sealed_size(self) -> int:
        return sum(s.sealed_size for s in self.shards)

    @property
    def author(self) -> str | None:
        """The author's address (lowercase), or None for an unsigned manifest."""
        return self.authorship.author if self.authorship else None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,
            "name": self.name,
            "description": self.description,
            "license": self.license,
            "metadata": dict(self.metadata),
            "schema": {
                "arrow": base64.b64encode(self.schema.serialize().to_pybytes()).decode(),
                "fields": describe_fields(self.schema),
            },
            "records": self.records,
            "plaintext_size": self.plaintext_size,
            "sealed_size": self.sealed_size,
            "shard_format": {"type": SHARD_TYPE, "compression": self.compression},
            "encryption": {
                "scheme": ENCRYPTION_SCHEME,
                "segment_size": self.segment_size,
                "key_commitment": self.key_commitment,
            },
            "shards": [s.to_dict(self.version) for s in self.shards],
            "content_root": self.content_root,
        }
        if self.version == 1:
            doc.update(dataset_id=self.seal_id, previous=self.previous_manifest)
        else:
            doc.update(seal_id=self.seal_id, previous_manifest=self.previous_manifest,
                       authorship=self.authorship.to_dict() if self.authorship else None)
        if self.version >= LINEAGE_VERSION:
            doc["lineage"] = self.lineage.to_dict() if self.lineage else None
        return doc

    @property
    def inherited_shards(self) -> int:
        """How many shards this version inherits from earlier versions (stored once, not uploaded again)."""
        return sum(1 for s in self.shards if s.origin is not None)

    def to_bytes(self) -> bytes:
        """The canonical encoding: the bytes that are stored and hashed."""
        return canonical.encode(self.to_dict())

    @property
    def hash(self) -> str:
        """Hex SHA-256 of the canonical bytes: this version's identity (registered on-chain)."""
        return canonical.sha256_hex(self.to_bytes())

    def _repr_html_(self, title: str = "Manifest") -> str:
        """A small HTML summary (notebooks show it for a manifest, and for a dataset)."""
        facts = [("records", f"{self.records:,}"), ("shards", f"{len(self.shards):,}"),
                 ("plaintext", f"{self.plaintext_size:,} bytes"), ("sealed", f"{self.sealed_size:,} bytes"),
                 ("manifest hash", self.hash), ("content root", self.content_root),
                 ("author", self.author or "-"), ("license", self.license or "-"),
                 ("previous version", self.previous_manifest or "-")]
        rows = "".join(f"<tr><th style='text-align:left'>{name}</th><td><code>{html.escape(value)}</code></td></tr>"
                       for name, value in facts)
        fields = "".join(f"<li><code>{html.escape(f.name)}</code> {html.escape(str(f.type))}</li>" for f in self.schema)
        return (f"<div><strong>{html.escape(title)}: {html.escape(self.name)}</strong>"
                f"<p>{html.escape(self.description)}</p><table>{rows}</table>"
                f"<details><summary>schema: {len(self.schema)} columns</summary><ul>{fields}</ul></details></div>")

    def with_locators(self, locators: Mapping[int, tuple[str, ...]]) -> Manifest:
        """A copy whose shards carry the given locators (by shard index)."""
        shards = tuple(replace(s, locators=tuple(locators.get(s.index, s.locators))) for s in self.shards)
        return replace(self, shards=shards)

    def signed_author(self) -> str | None:
        """The author whose ECDSA signature the manifest carries, checked offline (lowercase address); None
        when unsigned or signed by a contract wallet (ERC-1271: only the chain can check it)."""
        if self.authorship is None:
            return None
        signer = recover_author(self.authorship, self.seal_id, self.content_root, self.key_commitment,
                                len(self.shards))
        if signer is not None and signer != self.authorship.author:
            raise ManifestError(f"the signature is {signer}'s, not the named author's", field="authorship.signature",
                                hint="the manifest claims an author who did not sign it")
        return signer

    # ---- parsing -------------------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes, *, limits: limits_.Limits | None = None) -> Manifest:
        lim = limits or limits_.current()
        if len(data) > lim.manifest_bytes:
            raise LimitError(f"manifest is {len(data)} bytes, more than {lim.manifest_bytes}", limit="manifest_bytes")
        try:
            doc = canonical.decode(data, max_bytes=lim.manifest_bytes, max_depth=lim.json_depth)
        except canonical.CanonicalError as exc:
            raise ManifestError(str(exc)) from None
        return cls.from_dict(doc, limits=lim)

    @classmethod
    def from_dict(cls, doc: Any, *, limits: limits_.Limits | None = None) -> Manifest:
        lim = limits or limits_.current()
        if not isinstance(doc, dict):
            raise ManifestError("top level is not an object")
        _expect(doc, "format", str, "", lambda v: v == FORMAT, f"must be {FORMAT!r}")
        version = _expect(doc, "version", int, "", lambda v: v in VERSIONS,
                          f"unsupported version (this reader knows {', '.join(map(str, VERSIONS))})")
        _check_strings(doc, lim)
        schema_doc = _expect(doc, "schema", dict)
        schema = _parse_schema(schema_doc)
        shard_format = _expect(doc, "shard_format", dict)
        _expect(shard_format, "type", str, "shard_format.", lambda v: v == SHARD_TYPE, f"must be {SHARD_TYPE!r}")
        compression = _expect(shard_format, "compression", (str, type(None)), "shard_format.",
                              lambda v: v in (None, "zstd", "lz4"), "must be null, 'zstd' or 'lz4'")
        enc = _expect(doc, "encryption", dict)
        _expect(enc, "scheme", str, "encryption.", lambda v: v == ENCRYPTION_SCHEME, f"must be {ENCRYPTION_SCHEME!r}")
        segment_size = _expect(enc, "segment_size", int, "encryption.", _valid_segment_size, "out of range")
        metadata = _expect(doc, "metadata", dict)
        if len(metadata) > lim.metadata_entries:
            raise LimitError(f"{len(metadata)} metadata entries, more than {lim.metadata_entries}",
                             limit="metadata_entries")
        for k, v in metadata.items():
            if not isinstance(v, str):
                raise ManifestError("values must be strings", field=f"metadata.{k}")
        shard_docs = _expect(doc, "shards", list)
        if len(shard_docs) > lim.shards:
            raise LimitError(f"{len(shard_docs)} shards, more than {lim.shards}", limit="shards")
        shards = tuple(_parse_shard(i, s, segment_size, version, lim) for i, s in enumerate(shard_docs))
        v1 = version == 1
        digest_field = "previous" if v1 else "previous_manifest"
        manifest = cls(
            seal_id=_expect(doc, "dataset_id" if v1 else "seal_id", str, "", is_hex_digest,
                            "must be 64 lowercase hex digits"),
            name=_expect(doc, "name", str),
            description=_expect(doc, "description", str),
            license=_expect(doc, "license", str),
            schema=schema,
            records=_expect(doc, "records", int, "", _non_negative, "must be >= 0"),
            segment_size=segment_size,
            key_commitment=_expect(enc, "key_commitment", str, "encryption.", is_hex_digest, "must be 64 hex digits"),
            shards=shards,
            content_root=_expect(doc, "content_root", str, "", is_hex_digest, "must be 64 hex digits"),
            compression=compression,
            previous_manifest=_expect(doc, digest_field, (str, type(None)), "", lambda v: v is None or is_hex_digest(v),
                                      "must be null or a manifest hash (64 hex digits)"),
            metadata=metadata,
            authorship=None if v1 else _parse_authorship(doc),
            lineage=_parse_lineage(doc, lim) if version >= LINEAGE_VERSION else None,
            version=version,
        )
        manifest._check_consistency(doc, lim)
        return manifest

    def _check_consistency(self, doc: dict[str, Any], lim: limits_.Limits) -> None:
        if sum(s.records for s in self.shards) != self.records:
            raise ManifestError("does not equal the sum of the shards' records", field="records")
        if doc.get("plaintext_size") != self.plaintext_size:
            raise ManifestError("does not equal the sum of the shards' sizes", field="plaintext_size")
        if doc.get("sealed_size") != self.sealed_size:
            raise ManifestError("does not equal the sum of the shards' sealed sizes", field="sealed_size")
        if self.sealed_size > lim.dataset_bytes:
            raise LimitError(f"the dataset is {self.sealed_size} bytes sealed, more than {lim.dataset_bytes}",
                             limit="dataset_bytes")
        root = merkle_root([bytes.fromhex(s.sha256) for s in self.shards]).hex()
        if root != self.content_root:
            raise ManifestError("is not the Merkle root of the shard hashes", field="content_root")
        if doc["schema"]["fields"] != describe_fields(self.schema):
            raise ManifestError("does not describe the Arrow schema", field="schema.fields")
        generations = len(self.lineage.generations) if self.lineage else 0
        if self.lineage is not None and self.previous_manifest is None:
            raise ManifestError("a version with a lineage must name its previous manifest", field="lineage")
        for shard in self.shards:
            if shard.origin is not None and not 1 <= shard.origin[0] <= generations:
                raise ManifestError(f"names generation {shard.origin[0]}; the lineage has {generations}",
                                    field=f"shards[{shard.index}].origin.generation")


def describe_fields(schema: pa.Schema) -> list[dict[str, Any]]:
    """Human- and SQL-readable description of the Arrow schema (the Arrow bytes are authoritative)."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def _non_negative(v: int) -> bool:
    return v >= 0


def is_hex_digest(v: str) -> bool:
    """A 32-byte hash written as 64 lowercase hex digits (manifest hashes, roots, ids)."""
    return len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def _valid_segment_size(v: int) -> bool:
    try:
        check_segment_size(v)
    except ValueError:
        return False
    return True


def _check_strings(doc: Any, lim: limits_.Limits, path: str = "") -> None:
    """Every string (and key) of the document within `string_bytes` (UTF-8), before anything decodes one."""
    if isinstance(doc, str):
        if len(doc) > lim.string_bytes or len(doc.encode()) > lim.string_bytes:
            raise LimitError(f"a string at {path or '$'} is longer than {lim.string_bytes} bytes", limit="string_bytes")
    elif isinstance(doc, dict):
        for key, value in doc.items():
            _check_strings(key, lim, path)
            _check_strings(value, lim, f"{path}.{key}" if path else key)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            _check_strings(value, lim, f"{path}[{i}]")


def _expect(doc: dict, key: str, types: Any, prefix: str = "", check: Any = None, why: str = "") -> Any:
    name = prefix + key
    if key not in doc:
        raise ManifestError("is missing", field=name)
    value = doc[key]
    if (isinstance(value, bool) and types is int) or not isinstance(value, types):
        raise ManifestError(f"has the wrong type {type(value).__name__}", field=name)
    if check is not None and not check(value):
        raise ManifestError(why or "is invalid", field=name)
    return value


def _parse_schema(schema_doc: dict) -> pa.Schema:
    encoded = _expect(schema_doc, "arrow", str, "schema.")
    _expect(schema_doc, "fields", list, "schema.")
    try:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded, validate=True)))
    except (binascii.Error, ValueError, OSError, pa.ArrowException) as exc:  # pyarrow: OSError for flatbuffers
        raise ManifestError(f"is not a serialised Arrow schema: {str(exc)[:200]}", field="schema.arrow") from None


def _is_signature(v: str) -> bool:
    return v.startswith("0x") and 2 < len(v) <= 2 + 2 * MAX_SIGNATURE_SIZE and len(v) % 2 == 0 and \
        all(c in "0123456789abcdef" for c in v[2:])


def _parse_authorship(doc: dict) -> Authorship | None:
    block = _expect(doc, "authorship", (dict, type(None)))
    if block is None:
        return None
    return Authorship(
        author=_expect(block, "author", str, "authorship.", is_address, "must be a lowercase 0x address"),
        owner=_expect(block, "owner", str, "authorship.", is_address, "must be a lowercase 0x address"),
        signature=_expect(block, "signature", str, "authorship.", _is_signature, "must be 0x-prefixed lowercase hex"),
    )


def _parse_shard(position: int, doc: Any, segment_size: int, version: int, lim: limits_.Limits) -> ShardEntry:
    prefix = f"shards[{position}]."
    if not isinstance(doc, dict):
        raise ManifestError("is not an object", field=f"shards[{position}]")
    index = _expect(doc, "index", int, prefix, lambda v: v == position, f"must be {position} (shards in order)")
    plain = _expect(doc, "plaintext_size", int, prefix, _non_negative, "must be >= 0")
    sealed = _expect(doc, "sealed_size", int, prefix, lambda v: v == sealed_size(plain, segment_size),
                     "does not match plaintext_size and the segment size")
    if sealed > lim.shard_bytes:
        raise LimitError(f"shard {position} is {sealed} bytes sealed, more than {lim.shard_bytes}",
                         limit="shard_bytes")
    locators = _expect(doc, "locators", list, prefix, lambda v: all(isinstance(x, str) and "://" in x for x in v),
                       "must be a list of URIs")
    if len(locators) > lim.locators_per_shard:
        raise LimitError(f"shard {position} has {len(locators)} locators, more than {lim.locators_per_shard}",
                         limit="locators_per_shard")
    return ShardEntry(
        index=index,
        records=_expect(doc, "records", int, prefix, _non_negative, "must be >= 0"),
        plaintext_size=plain,
        sealed_size=sealed,
        sha256=_expect(doc, "sha256", str, prefix, is_hex_digest, "must be 64 lowercase hex digits"),
        locators=tuple(locators),
        blake3=_expect(doc, "blake3", str, prefix, is_hex_digest, "must be 64 lowercase hex digits")
        if version >= 2 else None,
        origin=_parse_origin(doc, prefix) if version >= LINEAGE_VERSION else None,
    )


def _parse_origin(doc: dict, prefix: str) -> tuple[int, int] | None:
    origin = _expect(doc, "origin", (dict, type(None)), prefix)
    if origin is None:
        return None
    return (_expect(origin, "generation", int, prefix + "origin.", lambda v: v >= 1, "must be >= 1"),
            _expect(origin, "index", int, prefix + "origin.", _non_negative, "must be >= 0"))


def _parse_lineage(doc: dict, lim: limits_.Limits) -> Lineage | None:
    block = _expect(doc, "lineage", (dict, type(None)))
    if block is None:
        return None
    generation_docs = _expect(block, "generations", list, "lineage.", lambda v: len(v) > 0, "must not be empty")
    if len(generation_docs) > lim.lineage_generations:
        raise LimitError(f"{len(generation_docs)} generations, more than {lim.lineage_generations}",
                         limit="lineage_generations")
    generations = []
    for i, g in enumerate(generation_docs):
        prefix = f"lineage.generations[{i}]."
        if not isinstance(g, dict):
            raise ManifestError("is not an object", field=prefix[:-1])
        last = i == len(generation_docs) - 1
        generations.append(Generation(
            seal_id=_expect(g, "seal_id", str, prefix, is_hex_digest, "must be 64 lowercase hex digits"),
            key_commitment=_expect(g, "key_commitment", str, prefix, is_hex_digest, "must be 64 lowercase hex digits"),
            key_link=_expect(g, "key_link", (str, type(None)), prefix,
                             lambda v, last=last: (v is None and last) or (v is not None and is_hex_digest(v)),
                             "must be 64 lowercase hex digits (null only on the last generation)"),
        ))
    return Lineage(key_link=_expect(block, "key_link", str, "lineage.", is_hex_digest, "must be 64 lowercase hex "
                                    "digits"), generations=tuple(generations))
