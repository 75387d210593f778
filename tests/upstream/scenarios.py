"""What a call's ``model`` asks the upstream to do (the keywords are listed in the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_CHUNKS = 20


@dataclass(slots=True, frozen=True)
class Scenario:
    """What the ``model`` value asks the server to do (see the package docstring)."""

    error: int | None = None
    slow_ms: int = 0
    chunks: int = DEFAULT_CHUNKS
    chunk_delay_ms: int = 0
    no_usage: bool = False
    cut: int | None = None
    hang: bool = False
    redirect: bool = False
    cached: int = 0
    gate: bool = False
    fill: bool = False
    early_hints: bool = False
    trickle_ms: int = 0
    drop: bool = False
    leak: int | None = None
    run_on_kib: int = 0


_INT_KEYWORDS = {"error", "slow", "chunks", "chunkdelay", "cut", "cached", "trickle", "leak", "runon"}
_PLAIN_SCENARIO = Scenario()


def parse_scenario(model: str) -> Scenario:
    """Read the scenario keywords out of a model name; unknown tokens are ignored."""
    if "-" not in model:
        return _PLAIN_SCENARIO
    values: dict[str, Any] = {}
    tokens = model.split("-")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _INT_KEYWORDS and i + 1 < len(tokens) and tokens[i + 1].isdigit():
            number = int(tokens[i + 1])
            key = {
                "error": "error",
                "slow": "slow_ms",
                "chunks": "chunks",
                "chunkdelay": "chunk_delay_ms",
                "cut": "cut",
                "cached": "cached",
                "trickle": "trickle_ms",
                "leak": "leak",
                "runon": "run_on_kib",
            }[token]
            values[key] = number
            i += 2
            continue
        if token == "nousage":
            values["no_usage"] = True
        elif token == "hang":
            values["hang"] = True
        elif token == "redirect":
            values["redirect"] = True
        elif token == "gate":
            values["gate"] = True
        elif token == "fill":
            values["fill"] = True
        elif token == "earlyhints":
            values["early_hints"] = True
        elif token == "drop":
            values["drop"] = True
        i += 1
    return Scenario(**values) if values else _PLAIN_SCENARIO
