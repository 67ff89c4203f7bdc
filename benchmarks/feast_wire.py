"""Typed values as JSON, for the pipe between feast_side.py (Feast's venv) and its parent.

Standard library only, so both venvs import it. JSON has no bytes or datetimes and Python's json
already round-trips floats exactly (NaN and infinities included), so only those two are tagged:
bytes as {"$bytes": hex}, datetimes as {"$datetime": ISO 8601 with offset}; naive datetimes are
sent as UTC. Lists and dicts are encoded element by element.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, datetime):
        aware = value if value.utcoffset() is not None else value.replace(tzinfo=timezone.utc)
        return {"$datetime": aware.isoformat()}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return encode(value.tolist())
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        if set(value) == {"$datetime"}:
            return datetime.fromisoformat(value["$datetime"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
