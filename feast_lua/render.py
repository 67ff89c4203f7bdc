"""Render templates/ into lua/ and the manifest; `--check` fails when lua/ is out of date.

    python -m feast_lua.render           # rewrite lua/
    python -m feast_lua.render --check   # exit 1 on any difference (CI runs this)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import jinja2

from .catalogue import SCRIPTS
from .constants import template_context
from .resources import lua_dir, templates_dir

MANIFEST = "manifest.json"


def render_all(templates: Path | None = None) -> dict[str, str]:
    """File name -> content for everything lua/ must hold."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates or templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    context = template_context()
    files: dict[str, str] = {}
    manifest: dict[str, object] = {"format": 1, "scripts": {}}
    for spec in SCRIPTS:
        source = env.get_template(f"{spec.name}.lua.j2").render(**context)
        files[f"{spec.name}.lua"] = source
        manifest["scripts"][spec.name] = {  # type: ignore[index]
            "file": f"{spec.name}.lua",
            "sha1": hashlib.sha1(source.encode()).hexdigest(),
            "flags": "no-writes" if spec.read_only else "",
            "keys": spec.keys,
            "argv": spec.argv,
            "reply": spec.reply,
        }
    files[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    return files


def check(out: Path) -> list[str]:
    """The files under `out` that differ from a fresh render, or are missing or extra."""
    expected = render_all()
    present = {p.name for p in out.glob("*") if p.is_file()}
    diffs = [name for name, text in expected.items()
             if not (out / name).is_file() or (out / name).read_text() != text]
    diffs += sorted(present - set(expected))
    return sorted(diffs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if lua/ differs from a render")
    args = parser.parse_args(argv)
    out = lua_dir()
    if args.check:
        diffs = check(out)
        if diffs:
            print(f"lua/ is out of date with templates/: {', '.join(diffs)}", file=sys.stderr)
            print("run: python -m feast_lua.render", file=sys.stderr)
            return 1
        print("lua/ matches templates/")
        return 0
    for name, text in render_all().items():
        (out / name).write_text(text)
    print(f"rendered {len(SCRIPTS)} scripts into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
