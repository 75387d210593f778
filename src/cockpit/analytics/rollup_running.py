"""The running sums' kept days (docs/analytics-rollups.md, "Running sums"): every value's sums up to a
day are kept on the checkpoint days (every CHECKPOINT-th local day) and on the newest rolled day (the
head); ``running_reads`` chooses what a period reads of them and of the day rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

CHECKPOINT = 4  # the running sums keep rows on every 4th local day
EARLIEST = -(2**31)  # a day before any: "every day row up to …"
RUNNING_COST = 2  # a checkpoint's running rows (every value with a past) weigh as two days' rows


def checkpoint(day: int) -> int:
    """The checkpoint day of the running sums at or before ``day`` (every CHECKPOINT-th local day)."""
    return day - day % CHECKPOINT


@dataclass(frozen=True)
class RunningReads:
    """The rows whose signed sums are every value's sums over the days [d0, d1): running rows of
    checkpoint days (``rows``: day -> sign) and day rows of ranges of days (``days``: low, high, sign;
    low may be EARLIEST)."""

    rows: dict[int, int]
    days: list[tuple[int, int, int]]


def _up_to(day: int, head: int | None) -> list[tuple[str, int, int, int]]:
    """Readings of every value's sums over the days up to ``day``, as ("row", K, K, sign) and ("days",
    low, high, sign) terms, from the running rows kept on the checkpoint days and on the newest day
    ``head`` (rollups._accumulate): the head's rows for a day after it (no day row is newer); else
    back from the checkpoint before it plus the days between, or forward from the next kept day less
    the days between, whichever reads fewer days."""
    if head is None:  # no running row: nothing was rolled
        return [("days", EARLIEST, day, 1)]
    if day >= head:
        return [("row", head, head, 1)]
    back = checkpoint(day)
    if day == back:
        return [("row", day, day, 1)]
    ahead = min(back + CHECKPOINT, head)
    if ahead - day < day - back:
        return [("row", ahead, ahead, 1), ("days", day + 1, ahead, -1)]
    return [("row", back, back, 1), ("days", back + 1, day, 1)]


def _cost(terms: Sequence[tuple[str, int, int, int]]) -> int:
    def days(low: int, high: int) -> int:  # "every day up to": only the days after the newest checkpoint
        return CHECKPOINT if low == EARLIEST else max(high - low + 1, 0)

    return sum(RUNNING_COST if kind == "row" else days(low, high) for kind, low, high, _ in terms)


def running_reads(d0: int, d1: int, head: int | None) -> RunningReads:
    """What to read for every value's sums over [d0, d1) from the running rows (kept on the
    checkpoint days and on the newest day, ``head``) and the day rows: the sums up to d1 - 1 less
    those up to d0 - 1, or the period's own day rows when fewer; terms that cancel are not read."""
    whole = [("days", d0, d1 - 1, 1)] if d1 > d0 else []
    difference = [*_up_to(d1 - 1, head), *[(k, lo, hi, -s) for k, lo, hi, s in _up_to(d0 - 1, head)]]
    terms = whole if _cost(whole) <= _cost(difference) else difference
    rows: dict[int, int] = {}
    edges: dict[int, int] = {}  # the day ranges' signs as steps at their edges
    for kind, low, high, sign in terms:
        if kind == "row":
            rows[low] = rows.get(low, 0) + sign
        elif high >= low:
            edges[low] = edges.get(low, 0) + sign
            edges[high + 1] = edges.get(high + 1, 0) - sign
    days: list[tuple[int, int, int]] = []
    level, points = 0, sorted(edges)
    for at, following in pairwise(points):
        level += edges[at]
        if level:
            days.append((at, following - 1, level))
    return RunningReads({day: sign for day, sign in rows.items() if sign}, days)
