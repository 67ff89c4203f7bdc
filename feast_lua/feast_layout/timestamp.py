"""google.protobuf.Timestamp bytes, as Feast stores a view's event timestamp in "_ts:<view>".

Hand-written rather than through protobuf: the message is two varints, and the write path
encodes one per row. Field 1 is seconds (int64), field 2 nanos (int32); proto3 leaves a field
out when it is 0, so the epoch is b"" and whole seconds carry no nanos field.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_U64 = (1 << 64) - 1


def varint(n: int) -> bytes:
    """A protobuf varint; a negative int64 becomes its ten-byte two's complement, as protobuf does."""
    n &= _U64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_timestamp(seconds: int, nanos: int = 0) -> bytes:
    if not 0 <= nanos <= 999_999_999:
        raise ValueError(f"nanos must be in 0..999999999, got {nanos}")
    out = b""
    if seconds:
        out += b"\x08" + varint(seconds)
    if nanos:
        out += b"\x10" + varint(nanos)
    return out


def timestamp_from_datetime(value: datetime) -> bytes:
    """The Timestamp of a datetime (naive means UTC), at microsecond precision, as
    Timestamp.FromDatetime gives it: seconds floor-divided, so nanos are never negative."""
    aware = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
    us = (aware - EPOCH) // timedelta(microseconds=1)
    seconds, micros = divmod(us, 1_000_000)
    return encode_timestamp(seconds, micros * 1000)


def decode_timestamp(data: bytes) -> tuple[int, int]:
    """(seconds, nanos) of Timestamp bytes; ValueError for anything else."""
    seconds = nanos = 0
    pos = 0
    while pos < len(data):
        tag = data[pos]
        if tag not in (0x08, 0x10):
            raise ValueError(f"unexpected tag {tag:#x} at byte {pos} of a Timestamp")
        pos += 1
        value = shift = 0
        while True:
            if pos >= len(data) or shift >= 70:
                raise ValueError("truncated or overlong varint in a Timestamp")
            b = data[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        if value >= 1 << 63:
            value -= 1 << 64
        if tag == 0x08:
            seconds = value
        else:
            nanos = value
    if not 0 <= nanos <= 999_999_999:
        raise ValueError(f"Timestamp nanos {nanos} outside 0..999999999")
    return seconds, nanos


def datetime_from_timestamp(seconds: int, nanos: int) -> datetime:
    """UTC datetime, truncated to microseconds."""
    return EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
