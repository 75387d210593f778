"""Credits enforced at call time, without a database round-trip per call.

A gateway call is admitted only if its member, the member's group and the account can all cover
its hold (``holds.plan_hold``: the price of an upper bound of its input tokens plus the price of its
output limit, which is clamped so that the call can never cost more). Checking and reserving that in
the database for every call would put a transaction on the hot path and make every call of an
account queue on one row. Instead each gateway process **leases** credits:

- A lease reserves credits for one member at all three levels at once, in one transaction under the
  account's lock: the member's remaining, the group's and the account's available credits are read
  from the running totals (``balances``), the lease takes at most the smallest of the three, and the
  amount becomes *held* (a ``hold`` ledger entry). Two processes, or two members of one group, can
  therefore never reserve the same credit twice.
- The process then serves the holds of that member's calls from the lease in memory. A finished
  call gives back what it did not use; its credits stay reserved until the usage recorder writes the
  call, which in the same transaction debits them (``usage_debit``) and moves them out of the lease
  (a ``release``): used goes up by exactly what held goes down.
- What is left in a lease goes back (``release``) when the member has been idle for a moment, when
  the cycle changes, and when the process stops. A lease is renewed while its process runs; the
  lease of a process that died expires and is swept by any other process.

So no member, group or account can ever have more credits used plus held than it was given, however
many calls and processes run at once. Refusals are HTTP 402 ``insufficient_credits``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.credits import balances, ledger
from cockpit.credits.amounts import grouped
from cockpit.credits.balances import Deltas
from cockpit.credits.cycles import account_limit, current_cycle, extra_now
from cockpit.credits.holds import (
    HoldPlan,
    Refusal,
    asked_output,
    input_token_bound,
    output_choices,
    plan_hold,
)
from cockpit.credits.leases import append_release, release_from_lease
from cockpit.credits.models import (
    BalanceScope,
    CreditCycle,
    CreditLease,
    EntryKind,
    GroupBudget,
    MemberAllocation,
)
from cockpit.kit.time import utcnow
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account

log = logging.getLogger("cockpit.credits")

ZERO = Decimal(0)
UNLIMITED = Decimal(10) ** 15
# A lease is sized for this many calls like the one that needed it (less if less is available).
CHUNK_CALLS = 16
# Tries to find room for one call before it is refused (other calls may take a lease's credits
# while a top-up is under way).
ATTEMPTS = 4
# After the database said a member has nothing more to lease, calls are refused (or clamped to the
# lease) from memory for this long, so that a caller out of credits cannot cost a transaction per
# call. Allocation changes end it at once (they change the account's generation).
EXHAUSTED_SECONDS = 1.0


class InsufficientCredits(Exception):
    """A call cannot be covered: ``whose`` (member, group or account) has only ``remaining``."""

    def __init__(self, needed: Decimal, remaining: Decimal, whose: BalanceScope) -> None:
        self.needed, self.remaining, self.whose = needed, remaining, whose
        where = {
            BalanceScope.user: "your allocation",
            BalanceScope.group: "your group's budget",
            BalanceScope.account: "your organisation's budget",
        }[whose]
        super().__init__(
            f"Insufficient credits: this call needs at least {grouped(needed)} credits (its input and one "
            f"output token), and {where} has remaining {grouped(max(remaining, ZERO))} credits in this "
            "cycle. "
            "Ask an administrator for more credits, or file a credit request."
        )


@dataclass(eq=False)
class Lease:
    id: uuid.UUID
    account_id: uuid.UUID
    user_id: uuid.UUID
    group_id: uuid.UUID | None
    cycle_id: uuid.UUID
    ends_at: datetime
    generation: int
    free: Decimal = ZERO  # reserved in the database, neither held by a call in flight nor spent
    in_flight: int = 0
    last_used: float = 0.0
    # Replaced (the cycle or the member's group changed): serves its calls in flight, then goes.
    retired: bool = False
    stored: bool = False  # has a row (created with its first credits)
    # The smallest of the three levels' available credits at the last top-up, and whose it was.
    room: Decimal = ZERO
    whose: BalanceScope = BalanceScope.user
    checked: float = 0.0  # when the room was read


@dataclass(frozen=True, slots=True)
class Hold:
    lease: Lease
    credits: Decimal
    max_output_tokens: int | None  # None: nothing to clamp (embeddings)


@dataclass(slots=True)
class Pricing:
    """What a call's hold depends on besides its body."""

    input_price: Decimal
    output_price: Decimal
    cached_price: Decimal
    max_output_tokens: int | None
    context_window: int | None


@dataclass
class KeeperStats:
    acquisitions: int = 0
    returns: int = 0
    swept: int = 0
    refused: int = 0


def owner_name() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class CreditKeeper:
    """The credit leases of one gateway process."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        generation: Callable[[uuid.UUID], int] = lambda _account_id: 0,
        ttl_seconds: float = 120.0,
        idle_seconds: float = 2.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        # An account's generation changes when its cycles, settings, budgets or allocations may have
        # changed: its leases are then replaced at their next use (other accounts' are not).
        self.generation = generation
        self.ttl = timedelta(seconds=ttl_seconds)
        self.idle_seconds = idle_seconds
        self.owner = owner_name()
        self.stats = KeeperStats()
        self._leases: dict[tuple[uuid.UUID, uuid.UUID], Lease] = {}
        self._retired: list[Lease] = []
        self._locks: defaultdict[tuple[uuid.UUID, uuid.UUID], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # ---- the hot path ----

    async def hold(
        self,
        *,
        account_id: uuid.UUID,
        user_id: uuid.UUID,
        group_id: uuid.UUID | None,
        factor: Decimal,
        pricing: Pricing,
        body: dict[str, Any],
        operation: str,
    ) -> Hold | None:
        """Reserve a call's credits, or raise InsufficientCredits. None when credits are not tracked."""
        if factor <= 0:
            return None
        chat = operation != "embedding"
        plan_args: dict[str, Any] = {
            "input_tokens": input_token_bound(body, operation=operation),
            "asked_max_output": asked_output(body) if chat else None,
            "model_max_output": pricing.max_output_tokens if chat else None,
            "context_window": pricing.context_window,
            "input_price": pricing.input_price,
            "output_price": pricing.output_price if chat else ZERO,
            "cached_price": pricing.cached_price,
            "factor": factor,
            "choices": output_choices(body) if chat else 1,
        }
        full = plan_hold(**plan_args, available=UNLIMITED)
        if isinstance(full, Refusal):  # cannot happen with unlimited credits
            raise InsufficientCredits(full.needed, ZERO, BalanceScope.user)
        key = (account_id, user_id)
        for _ in range(ATTEMPTS):
            lease = self._leases.get(key)
            if lease is not None and self._usable(lease):
                if lease.free >= full.credits:
                    return self._take(lease, full, chat)
                if lease.room <= 0 and time.monotonic() - lease.checked < EXHAUSTED_SECONDS:
                    break  # nothing more to lease just now
            lease = await self._top_up(key, group_id, full.credits, factor)
            if lease is None:
                return None  # tracking was turned off meanwhile
            if lease.free >= full.credits:
                return self._take(lease, full, chat)
            if lease.room <= 0 and lease.free > 0:
                # Nothing more to lease: the call gets the output limit the rest can pay for.
                plan = plan_hold(**plan_args, available=lease.free)
                if isinstance(plan, HoldPlan):
                    return self._take(lease, plan, chat)
            if lease.room <= 0:
                break
        lease = self._leases.get(key)
        if lease is not None and self._usable(lease) and lease.free > 0:
            plan = plan_hold(**plan_args, available=lease.free)
            if isinstance(plan, HoldPlan):
                return self._take(lease, plan, chat)
        remaining = lease.free + max(lease.room, ZERO) if lease is not None else ZERO
        whose = lease.whose if lease is not None else BalanceScope.user
        needed = plan_hold(**plan_args, available=ZERO)
        self.stats.refused += 1
        raise InsufficientCredits(
            needed.needed if isinstance(needed, Refusal) else full.credits, remaining, whose
        )

    async def hold_credits(
        self,
        *,
        account_id: uuid.UUID,
        user_id: uuid.UUID,
        group_id: uuid.UUID | None,
        factor: Decimal,
        credits: Decimal,
    ) -> Hold | None:
        """Reserve a fixed number of credits (an integration's price per tool call), or raise
        InsufficientCredits. None when credits are not tracked or nothing is to be held."""
        if factor <= 0 or credits <= 0:
            return None
        key = (account_id, user_id)
        plan = HoldPlan(credits=credits, max_output_tokens=0, input_tokens=0)
        for _ in range(ATTEMPTS):
            lease = self._leases.get(key)
            if lease is not None and self._usable(lease) and lease.free >= credits:
                return self._take(lease, plan, False)
            lease = await self._top_up(key, group_id, credits, factor)
            if lease is None:
                return None
            if lease.free >= credits:
                return self._take(lease, plan, False)
            if lease.room <= 0:
                break
        lease = self._leases.get(key)
        remaining = lease.free + max(lease.room, ZERO) if lease is not None else ZERO
        whose = lease.whose if lease is not None else BalanceScope.user
        self.stats.refused += 1
        raise InsufficientCredits(credits, remaining, whose)

    def _usable(self, lease: Lease) -> bool:
        return (
            not lease.retired
            and lease.generation == self.generation(lease.account_id)
            and utcnow() < lease.ends_at
        )

    def _take(self, lease: Lease, plan: HoldPlan, chat: bool) -> Hold:
        lease.free -= plan.credits
        lease.in_flight += 1
        lease.last_used = time.monotonic()
        return Hold(lease, plan.credits, plan.max_output_tokens if chat else None)

    def settle(self, hold: Hold, credits: Decimal) -> None:
        """A call ended: what it did not use goes back to the lease. Its credits stay held until the
        recorder writes the call (and moves them from the lease to used)."""
        lease = hold.lease
        lease.free += hold.credits - credits
        lease.in_flight -= 1
        lease.last_used = time.monotonic()

    # ---- leasing ----

    async def _top_up(
        self, key: tuple[uuid.UUID, uuid.UUID], group_id: uuid.UUID | None, need: Decimal, factor: Decimal
    ) -> Lease | None:
        async with self._locks[key]:  # one lease transaction per member at a time in this process
            lease = self._leases.get(key)
            if lease is not None and self._usable(lease):
                if lease.free >= need:
                    return lease  # another call topped it up meanwhile
                if lease.room <= 0 and time.monotonic() - lease.checked < EXHAUSTED_SECONDS:
                    # The top-up this call queued behind found nothing more to lease: a burst of calls
                    # of a member out of credits costs one transaction (on the account's lock), not
                    # one each.
                    return lease
            return await self._lease(key, group_id, need, lease)

    async def _lease(
        self, key: tuple[uuid.UUID, uuid.UUID], group_id: uuid.UUID | None, need: Decimal, lease: Lease | None
    ) -> Lease | None:
        account_id, user_id = key
        generation = self.generation(account_id)
        now = utcnow()

        def fresh(cycle: CreditCycle) -> Lease:
            return Lease(
                id=uuid.uuid4(),
                account_id=account_id,
                user_id=user_id,
                group_id=group_id,
                cycle_id=cycle.id,
                ends_at=cycle.ends_at,
                generation=generation,
            )

        async with self.sessionmaker() as session, session.begin():
            account = await _lock(session, account_id)
            if account is None or account.credit_factor <= 0:
                return None
            cycle = await current_cycle(session, account)
            if lease is not None and (lease.cycle_id != cycle.id or lease.group_id != group_id):
                # Its calls in flight finish on it; return_idle gives back the rest and removes it.
                lease.retired = True
                self._retired.append(lease)
                lease = None
            if lease is None:
                lease = fresh(cycle)
            room, whose = await _room(session, account, cycle, user_id, group_id)
            want = max(need * CHUNK_CALLS - lease.free, need - lease.free, ZERO)
            grant = max(min(room, want), ZERO)
            if grant > 0:
                if lease.stored:
                    updated = await session.execute(
                        update(CreditLease)
                        .where(CreditLease.id == lease.id)
                        .values(amount=CreditLease.amount + grant, expires_at=now + self.ttl)
                    )
                    if getattr(updated, "rowcount", 1) == 0:
                        # Swept (this process stalled past the lease's expiry): what it held was
                        # given back then. Its calls in flight settle into the old object, which is
                        # dropped; a new lease starts from nothing.
                        lease = fresh(cycle)
                if not lease.stored:
                    session.add(
                        CreditLease(
                            id=lease.id,
                            account_id=account_id,
                            cycle_id=cycle.id,
                            user_id=user_id,
                            group_id=group_id,
                            amount=grant,
                            owner=self.owner,
                            created_at=now,
                            expires_at=now + self.ttl,
                        )
                    )
                ledger.append(
                    session,
                    account_id=account_id,
                    cycle=cycle,
                    kind=EntryKind.hold,
                    amount=-grant,
                    user_id=user_id,
                    group_id=group_id,
                    description="Credits held for gateway calls",
                )
                deltas = Deltas()
                deltas.add(cycle.id, account_id=account_id, group_id=group_id, user_id=user_id, held=grant)
                await balances.apply(session, deltas)
        # Committed: the credits are ours.
        self.stats.acquisitions += 1
        lease.stored = lease.stored or grant > 0
        lease.free += grant
        lease.room = room - grant
        lease.whose = whose
        lease.checked = time.monotonic()
        lease.generation = generation
        lease.ends_at = cycle.ends_at
        lease.last_used = time.monotonic()
        self._leases[key] = lease
        return lease

    async def _give_back(self, session: AsyncSession, lease: Lease, amount: Decimal, why: str) -> Decimal:
        """Release ``amount`` of a lease (in the caller's transaction); returns the lease's amount left."""
        deltas = Deltas()
        left = await release_from_lease(session, lease.id, amount, why, deltas)
        await balances.apply(session, deltas)
        self.stats.returns += 1
        return ZERO if left is None else left  # None: swept, given back already

    async def return_idle(self, *, everything: bool = False) -> int:
        """Give back the unused credits of members idle for a moment (all of them with ``everything``),
        and of retired leases; a lease with nothing left in flight or unrecorded goes away."""
        now = time.monotonic()
        candidates = [
            lease
            for lease in list(self._leases.values())
            # Unused credits to give back, or none left but maybe a row to delete (its last calls
            # have been written since).
            if (lease.free > 0 or lease.in_flight == 0)
            and (everything or (lease.in_flight == 0 and now - lease.last_used >= self.idle_seconds))
        ]
        candidates += [lease for lease in self._retired if lease.free > 0 or lease.in_flight == 0]
        done = 0
        for lease in candidates:
            key = (lease.account_id, lease.user_id)
            lock = self._locks[key]
            if lock.locked():
                continue
            async with lock:
                amount = max(lease.free, ZERO)
                if not lease.stored:
                    if self._leases.get(key) is lease and lease.in_flight == 0:
                        del self._leases[key]
                    continue
                lease.free -= amount
                try:
                    async with self.sessionmaker() as session, session.begin():
                        await _lock(session, lease.account_id)
                        why = "Unused held credits given back"
                        left = await self._give_back(session, lease, amount, why)
                        gone = left == 0 and lease.in_flight == 0 and lease.free == 0
                        if gone:
                            await session.execute(delete(CreditLease).where(CreditLease.id == lease.id))
                except BaseException:
                    lease.free += amount
                    raise
                if gone:
                    if self._leases.get(key) is lease:
                        del self._leases[key]
                    if lease.retired:
                        self._retired.remove(lease)
                done += amount > 0
        return done

    async def heartbeat(self) -> None:
        """Renew this process's leases."""
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(CreditLease)
                .where(CreditLease.owner == self.owner)
                .values(expires_at=utcnow() + self.ttl)
            )

    async def sweep(self, *, now: datetime | None = None) -> int:
        """Give back the leases that expired (their process stopped renewing them: it died)."""
        now = now or utcnow()
        async with self.sessionmaker() as session:
            accounts = list(
                await session.scalars(
                    select(CreditLease.account_id).where(CreditLease.expires_at < now).distinct()
                )
            )
        swept = 0
        for account_id in accounts:
            async with self.sessionmaker() as session, session.begin():
                await _lock(session, account_id)
                expired = list(
                    await session.scalars(
                        select(CreditLease)
                        .where(CreditLease.account_id == account_id, CreditLease.expires_at < now)
                        .order_by(CreditLease.id)
                    )
                )
                deltas = Deltas()
                for row in expired:
                    if row.amount:
                        await append_release(
                            session, deltas, account_id=account_id, cycle_id=row.cycle_id,
                            user_id=row.user_id, group_id=row.group_id, amount=row.amount,
                            why="Held credits of a stopped gateway process given back",
                        )  # fmt: skip
                    await session.delete(row)
                await balances.apply(session, deltas)
                swept += len(expired)
        self.stats.swept += swept
        if swept:
            log.warning("gave back %d expired credit lease(s) of stopped gateway processes", swept)
        return swept

    # ---- background ----

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cockpit-credit-keeper")

    async def _run(self) -> None:
        beat = sweep = 0.0
        tick = min(1.0, max(self.idle_seconds / 2, 0.05))
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=tick)
            if self._stopping.is_set():
                break
            now = time.monotonic()
            try:
                await self.return_idle()
                if now - beat >= self.ttl.total_seconds() / 3:
                    beat = now
                    if self._leases:
                        await self.heartbeat()
                if now - sweep >= self.ttl.total_seconds() / 2:
                    sweep = now
                    await self.sweep()
            except Exception:  # keep going: the next tick tries again
                log.exception("credit keeper")

    async def stop(self) -> None:
        """Give back what is left (after the recorder has written the last calls)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            await self.return_idle(everything=True)
        except Exception:
            log.exception("could not give back held credits; they are swept when their lease expires")

    def held_in_memory(self) -> Decimal:
        return sum((lease.free for lease in self._leases.values()), ZERO)


async def _lock(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    try:
        return await lock_account(session, account_id)
    except LookupError:
        return None


async def _room(
    session: AsyncSession,
    account: Account,
    cycle: CreditCycle,
    user_id: uuid.UUID,
    group_id: uuid.UUID | None,
) -> tuple[Decimal, BalanceScope]:
    """What the member, their group and the account can still cover (the smallest), and whose it is."""
    totals = await balances.totals(
        session, cycle.id, account_id=account.id, group_id=group_id, user_id=user_id
    )
    allocation = await session.get(MemberAllocation, user_id)
    member_total = (
        allocation.monthly + extra_now(allocation.extra, allocation.extra_cycle_id, cycle)
        if allocation
        else ZERO
    )
    budget = await session.get(GroupBudget, group_id) if group_id is not None else None
    group_total = budget.monthly + extra_now(budget.extra, budget.extra_cycle_id, cycle) if budget else ZERO
    rooms = [
        (member_total - totals[BalanceScope.user].used - totals[BalanceScope.user].held, BalanceScope.user),
        (
            account_limit(account, cycle)
            - totals[BalanceScope.account].used
            - totals[BalanceScope.account].held,
            BalanceScope.account,
        ),
    ]
    if group_id is not None:
        rooms.insert(
            1,
            (
                group_total - totals[BalanceScope.group].used - totals[BalanceScope.group].held,
                BalanceScope.group,
            ),
        )
    return min(rooms, key=lambda item: item[0])
