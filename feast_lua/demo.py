"""The seed example end to end: define driver_trips, ingest a few rows, serve them.

    python -m feast_lua.demo                      # starts a throwaway redis-server, stops it after
    python -m feast_lua.demo --redis-url URL      # uses your Redis (writes project "default")

The rows are chosen so the output shows all four statuses: a fresh row, a stored null, a row
older than the table's max age, and a driver nothing was ever written for.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from datetime import datetime, timedelta, timezone

from . import Client, Entity, Feature, FeatureTable, GetOnlineFeaturesResponse, ValueType
from .server import RedisServer

REFS = ["driver_trips:average_daily_rides", "driver_trips:maximum_daily_rides", "driver_trips:rating"]


def run(client: Client) -> dict:
    driver = Entity(name="driver_id", value_type=ValueType.INT64)
    driver_trips = FeatureTable(
        name="driver_trips", entities=["driver_id"], max_age=timedelta(days=1),
        features=[Feature("average_daily_rides", ValueType.FLOAT),
                  Feature("maximum_daily_rides", ValueType.INT64),
                  Feature("rating", ValueType.FLOAT)])
    client.apply([driver, driver_trips])
    now = datetime.now(timezone.utc)
    result = client.write_rows("driver_trips", [
        {"driver_id": 1001, "average_daily_rides": 3.5, "maximum_daily_rides": 9, "rating": 4.8,
         "event_timestamp": now},
        {"driver_id": 1002, "average_daily_rides": 6.0, "maximum_daily_rides": 14, "rating": None,
         "event_timestamp": now},
        {"driver_id": 1003, "average_daily_rides": 1.5, "maximum_daily_rides": 4, "rating": 3.9,
         "event_timestamp": now - timedelta(days=3)},
    ])
    print(f"wrote {result.written} rows, skipped {result.skipped} older ones\n")

    response = client.get_online_features(
        feature_refs=REFS,
        entity_rows=[{"driver_id": 1001}, {"driver_id": 1002}, {"driver_id": 1003},
                     {"driver_id": 1004}],
    )
    features = response.to_dict()
    print(features, "\n")
    statuses = response.statuses()
    print(f"{'driver_id':>10}  " + "  ".join(f"{r.split(':')[1]:>28}" for r in REFS))
    for i, driver_id in enumerate(features["driver_id"]):
        cells = []
        for ref in REFS:
            status = statuses[ref][i]
            value = features[ref][i]
            shown = f"{value:.7g}" if isinstance(value, float) else str(value)
            if status != GetOnlineFeaturesResponse.FieldStatus.PRESENT:
                shown = ""
            cells.append(f"{status.name:>16} {shown:>11}")
        print(f"{driver_id:>10}  " + "  ".join(cells))
    return features


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the feast-lua seed example.")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                        help="Redis to use; without it a throwaway redis-server is started")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = args.redis_url
        if url is None:
            server = stack.enter_context(RedisServer())
            url = server.url
            print(f"started a throwaway redis-server from docker/redis.conf at {url}")
        client = stack.enter_context(Client(url))
        run(client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
