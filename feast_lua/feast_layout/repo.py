"""Reads entities and feature views out of a Feast repo, with the feast package.

The only place feast is imported, and only inside describe_repo(): feast-lua does not depend on
feast. The file imports nothing from feast_lua, so it also runs as a script with the python of
a venv that has feast but not feast-lua (the compat tests do that):

    python feast_lua/feast_layout/repo.py REPO_PATH   # prints the description as JSON
"""

from __future__ import annotations

import json
import sys
from typing import Any


def describe_repo(repo_path: str, project: str | None = None) -> dict[str, Any]:
    """The repo's project, entities (join key, value type) and views (join keys, features with
    their value types, ttl), in the shape of FeastDefinitions.to_dict()."""
    try:
        from feast import FeatureStore
    except ImportError as e:
        raise ImportError("reading a Feast repo needs feast: pip install 'feast-lua[feast-repo]'") from e
    store = FeatureStore(repo_path=repo_path)
    project = project or store.project
    entities = {}
    for entity in store.list_entities():
        entities[entity.name] = {"join_key": entity.join_key, "value_type": entity.value_type.name}
    views = []
    for view in store.list_feature_views():
        join_keys = [entities[name]["join_key"] for name in view.entities]
        views.append({
            "name": view.name,
            "join_keys": join_keys,
            "features": {f.name: f.dtype.to_value_type().name for f in view.features},
            "ttl_seconds": view.ttl.total_seconds() if view.ttl else 0,
        })
    return {"project": project, "entities": list(entities.values()), "views": views}


if __name__ == "__main__":
    print(json.dumps(describe_repo(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)))
