"""Fail when a source file has grown past the size a reader can hold in mind (``make check``).

Python, templates, stylesheets and scripts of the project count; vendored assets and migrations
(generated once, never edited) do not.
"""

from __future__ import annotations

import sys
from pathlib import Path

MAX_LINES = 600
ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("src", "tests", "benchmarks", "scripts")
SUFFIXES = {".py", ".html", ".css", ".js", ".sh"}
SKIPPED = ("static/vendor/", "migrations/versions/")


def oversized() -> list[tuple[Path, int]]:
    found = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if path.suffix not in SUFFIXES or not path.is_file() or any(s in relative for s in SKIPPED):
                continue
            lines = len(path.read_text(encoding="utf-8", errors="replace").splitlines())
            if lines > MAX_LINES:
                found.append((path.relative_to(ROOT), lines))
    return found


def main() -> int:
    found = oversized()
    for path, lines in found:
        print(f"{path}: {lines} lines (at most {MAX_LINES}): split it by topic", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
