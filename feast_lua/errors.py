"""One exception hierarchy, so callers can catch `FeastLuaError` and still tell causes apart.

Lookup failures also derive from `KeyError`, and input failures from `ValueError` or `TypeError`,
so code written against Feast's own exceptions keeps working.
"""

from __future__ import annotations


class FeastLuaError(Exception):
    """Base of every error feast-lua raises."""


class ConfigurationError(FeastLuaError):
    """The client was built in a way that cannot work, e.g. decode_responses=True."""


class RedisUnavailableError(FeastLuaError, ConnectionError):
    """Redis could not be reached, or the connection dropped and the retries ran out."""


class SchemaError(FeastLuaError, ValueError):
    """An Entity or FeatureTable definition is invalid, or conflicts with what is registered."""


class UnknownProjectError(FeastLuaError, KeyError):
    """No registry exists for the project; apply() creates one."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownTableError(UnknownProjectError):
    """The project has no feature table of that name."""


class UnknownFeatureError(UnknownProjectError):
    """The table has no feature of that name."""


class InvalidFeatureRefError(FeastLuaError, ValueError):
    """A feature ref is not of the form "table:feature"."""


class EntityRowError(FeastLuaError, ValueError):
    """An entity row lacks a join key, has an unexpected one, or holds a value of the wrong type."""


class ValueTypeError(FeastLuaError, TypeError):
    """A feature or timestamp value does not match its declared type."""


class RegistryConflictError(FeastLuaError):
    """The registry kept changing under concurrent apply() calls; retrying did not settle it."""


class ScriptError(FeastLuaError):
    """A script refused a call (BADREQUEST, BADROW) or Redis failed while running it."""


class RowError(FeastLuaError, ValueError):
    """A row to write lacks a feature or its event timestamp, or has a column the table lacks."""


class RequestError(FeastLuaError, TypeError):
    """An option of a request has the wrong type or range, e.g. a max_age override."""
