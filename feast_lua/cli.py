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
import json
import sys
from collections.abc import Sequence

import redis

from .cli_data import add_commands, add_redis_url, redis_url
from .errors import FeastLuaError
from .loader import LoadedScript, load_scripts
from .resources import lua_dir


class CliError(Exception):
    """A failure reported as one line on stderr and exit status 1."""


def _scripts() -> dict[str, LoadedScript]:
    """The shipped scripts, each checked against lua/manifest.json (a hand-edited file is refused)."""
    return load_scripts(lua_dir())


def _flags(script: LoadedScript) -> str:
    return "no-writes" if script.read_only else ""


# ------------------------------------------------------------------------------------------------
# feast-lua scripts ...
# ------------------------------------------------------------------------------------------------


def scripts_list(args: argparse.Namespace) -> int:
    scripts = _scripts()
    if args.json:
        print(json.dumps({s.name: {"sha1": s.sha, "flags": _flags(s), "file": f"{s.name}.lua"}
                          for s in scripts.values()}, indent=2))
        return 0
    width = max(len(name) for name in scripts)
    print(f"{'name':<{width}}  {'sha1':<40}  flags")
    for s in scripts.values():
        print(f"{s.name:<{width}}  {s.sha}  {_flags(s) or '-'}")
    return 0


def scripts_show(args: argparse.Namespace) -> int:
    scripts = _scripts()
    if args.name not in scripts:
        raise CliError(f"no script {args.name!r}; the scripts are {', '.join(scripts)}")
    out = sys.stdout.buffer
    out.write(scripts[args.name].source)
    out.flush()
    return 0


def scripts_load(args: argparse.Namespace) -> int:
    scripts = _scripts()  # all checked before connecting
    url = redis_url(args)
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        width = max(len(name) for name in scripts)
        for name, script in scripts.items():
            try:
                sha = client.script_load(script.source)
            except redis.exceptions.RedisError as error:
                raise CliError(f"SCRIPT LOAD {name} on {_safe_url(url)} failed: {error}") from error
            if sha != script.sha:
                raise CliError(
                    f"Redis computed SHA {sha} for {name}, but lua/manifest.json says {script.sha}"
                )
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
    add_redis_url(load)
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
