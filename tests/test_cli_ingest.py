"""`feast-lua apply`, `ingest` and `get` end to end against a real redis-server."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import NOW

from feast_lua import SchemaError, ValueType, cli
from feast_lua.specs import load_specs, parse_duration

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("yaml")

SPEC = """\
project: shop
entities:
  - name: driver_id
    value_type: INT64
    description: a driver
  - name: city
    value_type: STRING
feature_tables:
  - name: driver_trips
    entities: [driver_id]
    max_age: 1d
    features:
      - name: rides
        value_type: INT64
      - name: rating
        value_type: DOUBLE
  - name: city_stats
    entities: [city, driver_id]
    features:
      - name: tags
        value_type: STRING_LIST
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path


def trips_file(tmp_path, n=30, bad_row=None):
    rides = list(range(n))
    table = pa.table({
        "driver_id": list(range(1000, 1000 + n)), "rides": rides, "rating": [r / 10 for r in rides],
        "ts": pa.array([NOW - timedelta(minutes=r % 3) for r in rides], pa.timestamp("us", "UTC")),
        "extra": ["x"] * n})
    if bad_row is not None:
        ids = table.column("driver_id").to_pylist()
        ids[bad_row] = None
        table = table.set_column(0, "driver_id", pa.array(ids, pa.int64()))
    path = tmp_path / "trips.parquet"
    pq.write_table(table, path)
    return path


def test_help(capsys):
    for command in ("apply", "ingest", "get"):
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: feast-lua {command}") and "--redis-url" in out
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(word in out for word in ("apply", "ingest", "get", "scripts"))


def test_apply_ingest_get_end_to_end(redis_server, raw, spec, tmp_path, capsys):
    url = ["--redis-url", redis_server.url]
    assert cli.main(["apply", str(spec), *url]) == 0
    out = capsys.readouterr().out
    assert "project 'shop'" in out and "driver_trips (driver_id): rides INT64, rating DOUBLE" in out

    path = trips_file(tmp_path)
    assert cli.main(["ingest", "driver_trips", str(path), *url, "--project", "shop",
                     "--timestamp-column", "ts", "--chunk-rows", "7"]) == 0
    out = capsys.readouterr().out
    assert "ignored columns: extra" in out
    assert "rows read 30, written 30, skipped as older 0, rejected 0" in out

    assert cli.main(["get", "driver_trips:rides", "driver_trips:rating", "--entity", "driver_id=1005",
                     "--entity", "driver_id=7", "--project", "shop", *url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["driver_id", "driver_trips:rides", "driver_trips:rating"]
    assert lines[2].split() == ["1005", "5", "0.5"]
    assert lines[3].split() == ["7", "NOT_FOUND", "NOT_FOUND"]

    assert cli.main(["get", "driver_trips:rides", "--entity", "driver_id=1001", "--json",
                     "--project", "shop", *url]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["driver_id"] == 1001 and row["driver_trips:rides"]["value"] == 1
    assert row["driver_trips:rides"]["status"] == "PRESENT"


def test_ingest_reports_rejected_chunk(redis_server, raw, spec, tmp_path, capsys):
    url = ["--redis-url", redis_server.url, "--project", "shop"]
    assert cli.main(["apply", str(spec), *url]) == 0
    path = trips_file(tmp_path, bad_row=12)
    assert cli.main(["ingest", "driver_trips", str(path), *url, "--timestamp-column", "ts",
                     "--chunk-rows", "10"]) == 3
    captured = capsys.readouterr()
    assert "rejected row 12:" in captured.err and "driver_id" in captured.err
    assert "rejected chunk: rows 10 to 19" in captured.err
    assert "rows read 30, written 20, skipped as older 0, rejected 10" in captured.out


def test_ingest_schema_mismatch_writes_nothing(redis_server, raw, spec, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert cli.main(["apply", str(spec), "--project", "shop"]) == 0
    before = {k: raw.dump(k) for k in raw.scan_iter()}
    path = trips_file(tmp_path)  # its timestamp column is "ts", not event_timestamp
    assert cli.main(["ingest", "driver_trips", str(path), "--project", "shop"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("feast-lua: ") and "'event_timestamp'" in err
    assert {k: raw.dump(k) for k in raw.scan_iter()} == before
    assert cli.main(["ingest", "driver_trips", str(tmp_path / "missing.csv"), "--project", "shop"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_specs_shape(spec, tmp_path):
    specs = load_specs(spec)
    assert specs.project == "shop" and [e.name for e in specs.entities] == ["driver_id", "city"]
    trips = specs.tables[0]
    assert trips.max_age == timedelta(days=1) and trips.features[1].value_type is ValueType.DOUBLE
    assert specs.tables[1].max_age == timedelta(0)
    assert parse_duration("1h30m", "x") == timedelta(minutes=90)
    assert parse_duration(60, "x") == timedelta(minutes=1)
    bad = tmp_path / "bad.yaml"
    for text, words in [
        ("entities:\n  - name: a\n    value_type: INT64\n    colour: red\n", "unknown keys ['colour']"),
        ("feature_tables:\n  - name: t\n    entities: [a]\n", "lacks ['features']"),
        ("entities:\n  - name: a\n    value_type: FLOAT\n", "value type"),
        ("feature_tables:\n  - name: t\n    entities: [a]\n    max_age: soon\n    features:\n"
         "      - {name: f, value_type: INT64}\n", "max_age"),
        ("[1, 2", "not valid YAML"),
        ("{}", "no entities"),
    ]:
        bad.write_text(text)
        with pytest.raises(SchemaError, match=words.replace("[", r"\[").replace("]", r"\]")):
            load_specs(bad)
