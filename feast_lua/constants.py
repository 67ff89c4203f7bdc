"""Numbers and markers shared by the Python client and the Lua scripts.

They are defined once, here, and rendered into the templates, so the two sides cannot drift.
Changing any of them changes the scripts' SHAs and the documented protocol (docs/PROTOCOL.md).
"""

from __future__ import annotations

# FieldStatus numbers, as in Feast's ServingService.proto.
STATUS_INVALID = 0
STATUS_PRESENT = 1
STATUS_NULL_VALUE = 2
STATUS_NOT_FOUND = 3
STATUS_OUTSIDE_MAX_AGE = 4

# A stored null is the one-byte msgpack nil, so the read script tells it apart from a present
# value by comparing bytes, without decoding anything.
MSGPACK_NIL = 0xC0

# Every key starts with "{}": an empty hash tag, which makes Redis Cluster hash the whole key, so a
# "{" inside a user's value can never pick the slot.
KEY_PREFIX = b"{}fl:"
# A co-located key (Entity colocate=True) swaps the empty tag for "{" + the first
# COLOCATION_TAG_CHARS hex digits of SHA-1(typed value of the co-located join key) + "}".
KEY_BODY_PREFIX = b"fl:"
COLOCATION_TAG_CHARS = 16
REGISTRY_KEY_PREFIX = b"{}fl:registry:"

# Registry hash fields.
REGISTRY_FIELD_VERSION = "version"
REGISTRY_FIELD_DOC = "doc"
REGISTRY_FORMAT = 1

# Packed row (one hash field per feature table), see docs/PROTOCOL.md:
#   u8 format | i64 event_ts_us | i64 created_ts_us | u16 slot count | end offsets | values
# The format byte also says how wide the end offsets are.
ROW_FORMAT_U16 = 1
ROW_FORMAT_U32 = 2
ROW_HEADER_SIZE = 19
MAX_SLOTS = 65535
# The read script HMGETs one field per table of a key group with unpack(), whose stack limit is
# about 8000 values; requests are held far below it.
MAX_TABLES_PER_REQUEST = 1000

# A read call stops after the entity row at which its reply's values pass this many bytes, and
# answers for the rows so far; the client asks again for the rest. Big values cost by the byte,
# so this keeps such calls within the blocking budget too.
READ_REPLY_BUDGET_BYTES = 8 * 1024 * 1024

# The scripts hold integers in Lua doubles, exact up to 2^53: timestamps in us (years 1685-2255),
# max ages in us (285 years) and TTLs in ms must stay below it.
LUA_EXACT_INT = 2**53

# Feast layout (feast_lua/feast_layout, docs/PROTOCOL.md "Feast layout"): Feast's RedisOnlineStore
# stores a view's event timestamp in the field "_ts:<view>" as a protobuf Timestamp, and a null as an
# empty Value proto. A Value whose only field is null_val (field 19, NULL = 0) is a null too.
FEAST_TS_FIELD_PREFIX = "_ts:"
FEAST_NULL_VAL_PROTO = b"\x98\x01\x00"
# Feast writes a null UNIX_TIMESTAMP from pandas (NaT) as unix_timestamp_val = -2^63 (field 8,
# a ten-byte varint), and its reader turns that back into None: a null as well.
FEAST_NULL_TIMESTAMP_PROTO = b"\x40" + b"\x80" * 9 + b"\x01"
# The Feast-layout scripts pass one key's fields to HMGET / HSET with unpack(), whose stack limit is
# about 8000 values: fields per key (a request's timestamp fields plus its feature fields, or a
# written view's features) are held to this.
FEAST_MAX_FIELDS_PER_KEY = 2000

# Error codes, the first word of the scripts' error replies.
ERR_BADREQUEST = "BADREQUEST"
ERR_BADROW = "BADROW"
ERR_CONFLICT = "CONFLICT"


def template_context() -> dict[str, object]:
    """Everything the templates may use; nothing user-supplied ever goes in here."""
    from .types import ValueType  # types.py imports this module

    return {
        "VALUE_TYPE_NAMES": [t.name for t in ValueType if t is not ValueType.UNKNOWN],
        "STATUS_PRESENT": STATUS_PRESENT,
        "STATUS_NULL_VALUE": STATUS_NULL_VALUE,
        "STATUS_NOT_FOUND": STATUS_NOT_FOUND,
        "STATUS_OUTSIDE_MAX_AGE": STATUS_OUTSIDE_MAX_AGE,
        "MSGPACK_NIL": MSGPACK_NIL,
        "REGISTRY_FIELD_VERSION": REGISTRY_FIELD_VERSION,
        "REGISTRY_FIELD_DOC": REGISTRY_FIELD_DOC,
        "REGISTRY_FORMAT": REGISTRY_FORMAT,
        "ROW_FORMAT_U16": ROW_FORMAT_U16,
        "ROW_FORMAT_U32": ROW_FORMAT_U32,
        "ROW_HEADER_SIZE": ROW_HEADER_SIZE,
        "MAX_TABLES_PER_REQUEST": MAX_TABLES_PER_REQUEST,
        "READ_REPLY_BUDGET_BYTES": READ_REPLY_BUDGET_BYTES,
        "FEAST_NULL_VAL_BYTES": ", ".join(str(b) for b in FEAST_NULL_VAL_PROTO),
        "FEAST_NULL_TIMESTAMP_BYTES": ", ".join(str(b) for b in FEAST_NULL_TIMESTAMP_PROTO),
        "FEAST_MAX_FIELDS_PER_KEY": FEAST_MAX_FIELDS_PER_KEY,
        "ERR_BADREQUEST": ERR_BADREQUEST,
        "ERR_BADROW": ERR_BADROW,
        "ERR_CONFLICT": ERR_CONFLICT,
    }
