"""The `feast-lua` command line.

    feast-lua scripts list                  names, SHAs and flags from lua/manifest.json
    feast-lua scripts show NAME             a script's source, byte for byte
    feast-lua scripts load [--redis-url U]  SCRIPT LOAD every script, check each SHA
    feast-lua apply SPEC                    register entities and feature tables (YAML)
    feast-lua ingest TABLE FILE             write a Parquet or CSV file, newest-wins
    feast-lua get TABLE:FEATURE... --entity K=V   print online features as a table
    feast-lua stream-worker --stream S --group G --consumer C   consume a stream of events

The scripts are the API (docs/PROTOCOL.md): these commands let any client, in any language, see
and load exactly what the Python client runs. Each command group is a subparser, so later groups
(`apply`, `ingest`, `get`, `stream-worker`) plug in beside `scripts`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from .cli_data import add_commands
from .errors import FeastLuaError
from .resources import lua_dir

DEFAULT_REDIS_URL = "redis://localhost:6379"


class CliError(Exception):
    """A failure reported as one line on stderr and exit status 1."""


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    file: Path
    sha1: str
    flags: str

    def source(self) -> bytes:
        """The file's bytes, refused unless their SHA-1 is the manifest's."""
        data = self.file.read_bytes()
        actual = hashlib.sha1(data).hexdigest()
        if actual != self.sha1:
            raise CliError(f"{self.file} has SHA-1 {actual}, but lua/manifest.json says {self.sha1};"
                           " re-render it (python -m feast_lua.render)")
        return data


def read_manifest(folder: Path | None = None) -> dict[str, ManifestEntry]:
    folder = folder or lua_dir()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return {name: ManifestEntry(name, folder / spec["file"], spec["sha1"], spec["flags"])
            for name, spec in sorted(manifest["scripts"].items())}


# ------------------------------------------------------------------------------------------------
# feast-lua scripts ...
# ------------------------------------------------------------------------------------------------


def scripts_list(args: argparse.Namespace) -> int:
    entries = read_manifest()
    if args.json:
        print(json.dumps({e.name: {"sha1": e.sha1, "flags": e.flags, "file": e.file.name}
                          for e in entries.values()}, indent=2))
        return 0
    width = max(len(name) for name in entries)
    print(f"{'name':<{width}}  {'sha1':<40}  flags")
    for e in entries.values():
        e.source()  # a hand-edited file must not be listed under the manifest's SHA
        print(f"{e.name:<{width}}  {e.sha1}  {e.flags or '-'}")
    return 0


def scripts_show(args: argparse.Namespace) -> int:
    entries = read_manifest()
    if args.name not in entries:
        raise CliError(f"no script {args.name!r}; the scripts are {', '.join(entries)}")
    out = sys.stdout.buffer
    out.write(entries[args.name].source())
    out.flush()
    return 0


def scripts_load(args: argparse.Namespace) -> int:
    entries = read_manifest()
    sources = {name: e.source() for name, e in entries.items()}  # all checked before connecting
    url = args.redis_url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        width = max(len(name) for name in entries)
        for name, e in entries.items():
            try:
                sha = client.script_load(sources[name])
            except redis.exceptions.RedisError as error:
                raise CliError(f"SCRIPT LOAD {name} on {_safe_url(url)} failed: {error}") from error
            if sha != e.sha1:
                raise CliError(f"Redis computed SHA {sha} for {name}, but lua/manifest.json says {e.sha1}")
            print(f"{name:<{width}}  {sha}  loaded")
    finally:
        client.close()
    return 0


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user + ':***@' if user else '***@'}{host}"
    return url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feast-lua",
        description="Feast-style online feature serving inside Redis: tools around the Lua "
                    "scripts that are its API (docs/PROTOCOL.md).")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    scripts = groups.add_parser(
        "scripts", help="list, show or load the Lua scripts",
        description="The Lua scripts (lua/*.lua, listed with their SHAs in lua/manifest.json).")
    commands = scripts.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)

    listing = commands.add_parser(
        "list", help="names, SHA-1s and shebang flags from the manifest",
        description="Print each script's name, SHA-1 (what EVALSHA takes) and shebang flags, "
                    "checking each file against lua/manifest.json.")
    listing.add_argument("--json", action="store_true", help="print the entries as JSON")
    listing.set_defaults(func=scripts_list)

    show = commands.add_parser(
        "show", help="print a script's source",
        description="Print a script's source exactly as SCRIPT LOAD sends it.")
    show.add_argument("name", metavar="NAME",
                      help="the script's name: read, write, stream_write or registry_put")
    show.set_defaults(func=scripts_show)

    load = commands.add_parser(
        "load", help="SCRIPT LOAD every script into a Redis server",
        description="SCRIPT LOAD every script into a Redis server and check that the SHA Redis "
                    "computes equals the manifest's. Exit status 1 on any failure.")
    load.add_argument("--redis-url", metavar="URL",
                      help=f"redis:// or rediss:// URL (default: $REDIS_URL, else {DEFAULT_REDIS_URL})")
    load.set_defaults(func=scripts_load)

    add_commands(groups)  # apply, ingest, get, stream-worker (cli_data.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, FeastLuaError) as e:
        print(f"feast-lua: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `feast-lua scripts show read | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
