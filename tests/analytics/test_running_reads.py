"""What a view reads of the running sums (rollup_running.running_reads): for every period and every
newest day, the signed rows count each day of the period once and no other day."""

from __future__ import annotations

from cockpit.analytics.rollup_running import CHECKPOINT, EARLIEST, RunningReads, running_reads


def _weight(d0: int, d1: int, top: int | None, day: int) -> int:
    """How many times the reads for [d0, d1) count the calls of ``day``: a running row of checkpoint
    C holds every day up to C, a range of day rows its days."""
    reads = running_reads(d0, d1, top)
    rows = sum(sign for c, sign in reads.rows.items() if day <= c)
    return rows + sum(sign for low, high, sign in reads.days if low <= day <= high)


def test_every_day_of_the_period_is_counted_once() -> None:
    checked = 0
    for top in (*range(0, 32, 3), None):
        for d0 in range(-3, 38):
            for d1 in range(d0, 40):
                reads = running_reads(d0, d1, top)
                # Only kept days: the checkpoints up to the newest rolled day (``top``) and that day.
                assert all(top is not None and (c % CHECKPOINT == 0 or c == top) for c in reads.rows)
                assert all(top is not None and c <= top for c in reads.rows)
                # Day rows exist up to the newest rolled day (none when nothing was rolled).
                days = range(-10, top + 1) if top is not None else range(0)
                for day in days:
                    assert _weight(d0, d1, top, day) == (1 if d0 <= day < d1 else 0), (d0, d1, top, day)
                checked += 1
    assert checked > 5_000


def test_a_long_period_reads_two_kept_days_and_few_days() -> None:
    # 90 days: the rows of two kept days and at most two days at each end, whatever the length.
    for d0 in range(100, 108):
        reads = running_reads(d0, d0 + 90, 400)
        assert len(reads.rows) == 2
        assert sum(high - low + 1 for low, high, _ in reads.days) <= 4
    # Up to the newest day (the head, here not a checkpoint) or past it: the head's rows.
    assert running_reads(101, 131, 130) == RunningReads({130: 1, 100: -1}, [])
    assert running_reads(101, 190, 130) == RunningReads({130: 1, 100: -1}, [])
    # The day before the head, nearer to it than to a checkpoint: the head's rows less its day rows.
    assert running_reads(101, 131, 131) == RunningReads({131: 1, 100: -1}, [(131, 131, -1)])
    # A period of a few days reads its day rows.
    assert running_reads(101, 104, 400) == RunningReads({}, [(101, 103, 1)])
    # Nothing rolled yet: day rows only (there are none).
    assert running_reads(100, 190, None).days == [(100, 189, 1)]
    assert all(low != EARLIEST for low, _, _ in running_reads(100, 190, None).days)
