"""Cycle rollover on time, by itself: each account's next cycle starts once the current one has
ended, so that a cycle begins when it should even when no request comes in.

Any request that needs the current cycle rolls it over too (``cycles.current_cycle``); this only
makes it happen on time. The job queue runs ``roll_over_due`` every ``COCKPIT_CREDITS_SCHEDULER_SECONDS``
(``credits/tasks.py``), from ``cockpit worker`` or the server's own worker; several of them at once,
or a request rolling over at the same moment, are safe: each rollover happens under the account's
lock and looks again at the open cycle first, and (account_id, seq) is unique.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.credits.cycles import current_cycle, open_cycle
from cockpit.credits.models import CreditCycle
from cockpit.kit.time import utcnow
from cockpit.tenancy.lock import lock_account

log = logging.getLogger("cockpit.credits.scheduler")


async def due_accounts(session: AsyncSession) -> list[uuid.UUID]:
    """Accounts whose open cycle has ended."""
    rows = await session.scalars(
        select(CreditCycle.account_id)
        .where(CreditCycle.closed_at.is_(None), CreditCycle.ends_at <= utcnow())
        .order_by(CreditCycle.ends_at)
    )
    return list(dict.fromkeys(rows.all()))


async def _roll_over(session: AsyncSession, account_id: uuid.UUID) -> bool:
    """Roll one account over if its open cycle is still due once its lock is held."""
    account = await lock_account(session, account_id)
    cycle = await open_cycle(session, account_id)
    now = utcnow()
    if cycle is None or cycle.ends_at > now:
        return False  # another process (or a request) rolled it over first
    # current_cycle reuses this transaction's lock; across several missed boundaries it starts the
    # period that contains now.
    new = await current_cycle(session, account, now=now)
    log.info(
        "credit cycle rolled over",
        extra={"account_id": str(account_id), "from_seq": cycle.seq, "to_seq": new.seq},
    )
    return True


async def roll_over_due(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Start the next cycle of every account whose cycle has ended; returns how many rolled over.

    Each account is rolled over in a transaction of its own, so that one failure (logged) does not
    hold back the others.
    """
    async with sessionmaker() as session, session.begin():
        accounts = await due_accounts(session)
    rolled = 0
    for account_id in accounts:
        try:
            async with sessionmaker() as session, session.begin():
                if await _roll_over(session, account_id):
                    rolled += 1
        except LookupError:  # the account was deleted meanwhile
            continue
        except Exception:
            log.exception("credit cycle rollover failed", extra={"account_id": str(account_id)})
    return rolled
