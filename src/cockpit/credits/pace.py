"""Budget pace: at the rate credits were used so far this cycle, when will a budget run out?

The burn is the credits used since the cycle started divided by the days elapsed (at least one
hour, so that the first minutes of a cycle do not project wildly); the run-out moment is now plus the
credits left divided by the burn. When it falls at or after the cycle's end the budget lasts the
cycle. Everything is exact (Decimal); the moment is rounded down to the minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
DAY = Decimal(86400)
MIN_ELAPSED = timedelta(hours=1)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Pace:
    used: Decimal
    budget: Decimal | None  # None: no limit
    daily_burn: Decimal  # credits per day, to the cent
    runs_out_at: datetime | None  # None: lasts the cycle (or no limit, or nothing used)
    exhausted: bool  # nothing left now

    @property
    def lasts_the_cycle(self) -> bool:
        return self.runs_out_at is None and not self.exhausted


def pace(
    *, used: Decimal, budget: Decimal | None, cycle_start: datetime, cycle_end: datetime, now: datetime
) -> Pace:
    elapsed = max(min(now, cycle_end) - cycle_start, MIN_ELAPSED)
    seconds = Decimal(elapsed.days * 86400 + elapsed.seconds)
    per_second = used / seconds if used > 0 else ZERO
    daily = (per_second * DAY).quantize(CENT, rounding=ROUND_HALF_UP)
    if budget is None:
        return Pace(used, None, daily, None, exhausted=False)
    left = budget - used
    if left <= 0:
        return Pace(used, budget, daily, now, exhausted=True)
    if per_second == 0:
        return Pace(used, budget, daily, None, exhausted=False)
    moment = now + timedelta(seconds=int(left / per_second))
    moment = moment.replace(second=0, microsecond=0)
    return Pace(used, budget, daily, moment if moment < cycle_end else None, exhausted=False)
