"""Key encoding is canonical and unambiguous, and user values never pick a cluster slot."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from feast_lua.keys import entity_key
from feast_lua.types import ValueType

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,8}", fullmatch=True)
typed_values = st.one_of(
    st.tuples(st.just(ValueType.INT64), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just(ValueType.STRING), st.text(max_size=12)
              .filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))),
    st.tuples(st.just(ValueType.BYTES), st.binary(max_size=12)),
)
entities = st.dictionaries(names, typed_values, min_size=1, max_size=3)


def canonical(project, values):
    """What two entity keys must agree on to be the same key."""
    kind = {ValueType.INT64: "i", ValueType.INT32: "i", ValueType.STRING: "s", ValueType.BYTES: "b"}
    return project, tuple(sorted((k, kind[t], v) for k, (t, v) in values.items()))


@given(names, entities, names, entities)
def test_distinct_entities_never_share_a_key(p1, e1, p2, e2):
    same_key = entity_key(p1, e1) == entity_key(p2, e2)
    assert same_key == (canonical(p1, e1) == canonical(p2, e2))


@given(names, entities)
def test_key_does_not_depend_on_join_key_order(project, values):
    reordered = dict(reversed(list(values.items())))
    assert entity_key(project, values) == entity_key(project, reordered)


@given(names, entities)
def test_the_whole_key_is_hashed(project, values):
    key = entity_key(project, values)
    assert key.startswith(b"{}")
    # An empty leading "{}" makes Redis hash the whole key, as if there were no tag at all.
    assert key_slot(key) == _crc_slot(key)


@given(st.text(max_size=20))
def test_a_brace_in_a_value_does_not_change_the_slot_rule(text):
    key = entity_key("p", {"s": (ValueType.STRING, "{" + text + "}")})
    assert key_slot(key) == _crc_slot(key)


def _crc_slot(key: bytes) -> int:
    from binascii import crc_hqx

    return crc_hqx(key, 0) % 16384


def test_int_one_and_string_one_differ():
    assert entity_key("p", {"k": (ValueType.INT64, 1)}) == b"{}fl:1:p1:ki1:1"
    assert entity_key("p", {"k": (ValueType.STRING, "1")}) == b"{}fl:1:p1:ks1:1"
    assert entity_key("p", {"k": (ValueType.BYTES, b"1")}) == b"{}fl:1:p1:kb1:1"


def test_composite_keys_cannot_be_forged_by_values():
    a = entity_key("p", {"a": (ValueType.STRING, "x1:b"), "b": (ValueType.STRING, "y")})
    b = entity_key("p", {"a": (ValueType.STRING, "x"), "b": (ValueType.STRING, "1:by")})
    assert a != b


def test_seed_key_bytes():
    key = entity_key("default", {"driver_id": (ValueType.INT64, 1001)})
    assert key == b"{}fl:7:default9:driver_idi4:1001"


def test_colocated_keys_carry_a_tag_from_the_colocated_value():
    from redis.crc import key_slot

    from feast_lua.keys import KeyEncoder, colocation_tag

    types = {"customer_id": ValueType.STRING, "account_id": ValueType.INT64}
    accounts = KeyEncoder("default", ["customer_id", "account_id"], types, colocate="customer_id")
    customers = KeyEncoder("default", ["customer_id"], types, colocate="customer_id")
    tag = colocation_tag(b"s5:alice")
    assert tag == hashlib.sha1(b"s5:alice").hexdigest()[:16].encode()
    key = accounts.key({"customer_id": "alice", "account_id": 7}, 0)
    assert key == b"{" + tag + b"}fl:7:default10:account_idi1:711:customer_ids5:alice"
    # Bulk and single encodings agree, and every key of one customer hashes to one slot.
    rows = [{"customer_id": "alice", "account_id": a} for a in range(50)]
    keys = accounts.keys(rows)
    assert keys == [accounts.key(r, i) for i, r in enumerate(rows)]
    slots = {key_slot(k) for k in keys} | {key_slot(customers.key({"customer_id": "alice"}, 0))}
    assert len(slots) == 1
    # A "}" in the value cannot end the tag early: the tag is hex.
    odd = customers.key({"customer_id": "a}b{c"}, 0)
    assert odd.startswith(b"{" + colocation_tag(b"s5:a}b{c") + b"}fl:")
