"""Feast's own Redis layout (RedisOnlineStore, entity key serialization v3): read and written by
the feast_read and feast_write scripts, with definitions declared by hand or read from a repo.

One module per concern: keys (entity key bytes), murmur (field names), timestamp (the
Timestamp proto), proto (Value protos, needs `protobuf`), definitions, read_plan, write_plan,
client, and repo (reading a Feast repo, needs `feast`).
"""

from .client import FeastLayoutClient
from .definitions import FeastDefinitions, FeastEntity, FeastView
from .keys import entity_key
from .murmur import feature_field, murmur3_32, timestamp_field
from .timestamp import decode_timestamp, encode_timestamp, timestamp_from_datetime

__all__ = [
    "FeastDefinitions",
    "FeastEntity",
    "FeastLayoutClient",
    "FeastView",
    "decode_timestamp",
    "encode_timestamp",
    "entity_key",
    "feature_field",
    "murmur3_32",
    "timestamp_field",
    "timestamp_from_datetime",
]
