"""Where the shipped files are: inside the installed package, or at the top of a source checkout.

A wheel carries lua/, templates/ and redis.conf inside feast_lua/ (see pyproject.toml); an
editable install or a plain checkout finds them at the repository's top level instead.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def _find(in_package: str, in_checkout: str) -> Path:
    for candidate in (_PACKAGE / in_package, _CHECKOUT / in_checkout):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"feast-lua is missing {in_checkout!r}: reinstall the package")


def lua_dir() -> Path:
    return _find("lua", "lua")


def templates_dir() -> Path:
    return _find("templates", "templates")


def redis_conf() -> Path:
    return _find("redis.conf", "docker/redis.conf")


def checkout_root() -> Path | None:
    """The source checkout this package runs from, if any; only it may be re-rendered."""
    return _CHECKOUT if (_CHECKOUT / "templates").is_dir() and (_CHECKOUT / "lua").is_dir() else None
