"""Feature refs: "table:feature" strings, as in Feast 0.x."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .errors import InvalidFeatureRefError


class FeatureRef(NamedTuple):
    table: str
    feature: str

    def __str__(self) -> str:
        return f"{self.table}:{self.feature}"


def parse_refs(feature_refs: Sequence[str]) -> list[FeatureRef]:
    if isinstance(feature_refs, (str, bytes)) or not isinstance(feature_refs, Sequence):
        raise InvalidFeatureRefError(
            f"feature_refs must be a list of 'table:feature' strings, got {feature_refs!r}"
        )
    if not feature_refs:
        raise InvalidFeatureRefError("feature_refs is empty; ask for at least one feature")
    parsed = []
    seen = set()
    for ref in feature_refs:
        if not isinstance(ref, str) or ref.count(":") != 1:
            raise InvalidFeatureRefError(f"feature ref {ref!r} is not of the form 'table:feature'")
        table, feature = ref.split(":")
        if not table or not feature:
            raise InvalidFeatureRefError(f"feature ref {ref!r} is not of the form 'table:feature'")
        if ref in seen:
            raise InvalidFeatureRefError(f"feature ref {ref!r} is requested twice")
        seen.add(ref)
        parsed.append(FeatureRef(table, feature))
    return parsed
