"""feast-lua: Feast-style online feature serving inside Redis, one atomic EVALSHA per request."""

from .client import Client
from .errors import (
    ConfigurationError,
    EntityRowError,
    FeastLuaError,
    InvalidFeatureRefError,
    RedisUnavailableError,
    RegistryConflictError,
    RequestError,
    RowError,
    SchemaError,
    ScriptError,
    UnknownFeatureError,
    UnknownProjectError,
    UnknownTableError,
    ValueTypeError,
)
from .feast_layout import FeastDefinitions, FeastEntity, FeastLayoutClient, FeastView
from .ingest import IngestResult, Rejection
from .response import FieldValues, GetOnlineFeaturesResponse, OnlineResponse
from .schema import Entity, Feature, FeatureTable
from .stream import StepResult, StreamWorker
from .types import FieldStatus, ValueType
from .write import WriteResult

__all__ = [
    "Client",
    "ConfigurationError",
    "Entity",
    "EntityRowError",
    "FeastDefinitions",
    "FeastEntity",
    "FeastLayoutClient",
    "FeastLuaError",
    "FeastView",
    "Feature",
    "FeatureTable",
    "FieldStatus",
    "FieldValues",
    "IngestResult",
    "GetOnlineFeaturesResponse",
    "InvalidFeatureRefError",
    "OnlineResponse",
    "RedisUnavailableError",
    "Rejection",
    "RegistryConflictError",
    "RequestError",
    "RowError",
    "SchemaError",
    "StepResult",
    "StreamWorker",
    "ScriptError",
    "UnknownFeatureError",
    "UnknownProjectError",
    "UnknownTableError",
    "ValueType",
    "ValueTypeError",
    "WriteResult",
]
__version__ = "0.1.0"
