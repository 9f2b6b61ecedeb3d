"""Canonical JSON: one encoding per value, everything else rejected."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deai_data.formats import canonical

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63) + 1, 2**63 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127), max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_round_trip_is_identity(value):
    data = canonical.encode(value)
    assert canonical.decode(data) == value
    assert canonical.encode(canonical.decode(data)) == data


@given(st.dictionaries(st.text(alphabet="abcdefgh", min_size=1, max_size=3), st.integers(-1000, 1000), min_size=2))
def test_key_order_does_not_change_bytes(mapping):
    reversed_mapping = dict(reversed(list(mapping.items())))
    assert canonical.encode(mapping) == canonical.encode(reversed_mapping)


@pytest.mark.parametrize("text", [
    b'{"b":1,"a":2}',          # keys out of order
    b'{"a": 1}',               # whitespace
    b'{"a":1.5}',              # float
    b'{"a":"\\u00e9"}',        # needless escape of a non-ASCII character
    b'[1,2',                   # not JSON
    b'\xff\xfe',               # not UTF-8
    b'{"a":NaN}',              # constant
])
def test_non_canonical_bytes_are_rejected(text):
    with pytest.raises(canonical.CanonicalError):
        canonical.decode(text)


@pytest.mark.parametrize("value", [1.0, {"a": float("nan")}, {1: "x"}, {"é": 1}, 2**63, b"bytes"])
def test_values_outside_the_subset_cannot_be_encoded(value):
    with pytest.raises(canonical.CanonicalError):
        canonical.encode(value)
