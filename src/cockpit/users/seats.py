"""Seats: each account has a limit per product, each active user holds seats in some of them.

Pending invitations reserve seats too, but they are the invitations domain's rows (above this one):
every check here is given how to count them (``Reservations``: ``invitations.service.reserved_seats``),
and counts them after the account's lock, like the seats held.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.kit.errors import Conflict, InvalidInput
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserStatus


class SeatProduct(StrEnum):
    copilot = "copilot"
    console = "console"
    compute = "compute"


PRODUCTS = tuple(SeatProduct)


def user_seats(user: User) -> list[SeatProduct]:
    return [p for p in PRODUCTS if getattr(user, f"seat_{p.value}")]


def set_user_seats(holder: object, seats: Iterable[SeatProduct]) -> None:
    """Set the seat flags of a user or an invitation."""
    wanted = set(seats)
    for product in PRODUCTS:
        setattr(holder, f"seat_{product.value}", product in wanted)


def seat_limit(account: Account, product: SeatProduct) -> int:
    limit: int = getattr(account, f"seat_limit_{product.value}")
    return limit


def parse_seats(values: Sequence[str], *, field: str = "seats") -> list[SeatProduct]:
    allowed = ", ".join(PRODUCTS)
    result: list[SeatProduct] = []
    for value in values:
        text = value.strip().lower()
        if not text:
            continue
        try:
            product = SeatProduct(text)
        except ValueError as exc:
            raise InvalidInput(
                "unknown_seat",
                f"Unknown seat '{value}'; seats are {allowed}.",
                details=[{"field": field, "message": f"unknown seat {value}"}],
            ) from exc
        if product not in result:
            result.append(product)
    return result


@dataclass(frozen=True)
class SeatUsage:
    product: SeatProduct
    limit: int
    used: int  # active users holding the seat
    reserved: int  # pending invitations that will take it

    @property
    def available(self) -> int:
        return max(0, self.limit - self.used - self.reserved)


# How many seats of each product the account's pending invitations reserve.
Reservations = Callable[[AsyncSession, uuid.UUID], Awaitable[Mapping[SeatProduct, int]]]


async def held(session: AsyncSession, account_id: uuid.UUID) -> dict[SeatProduct, int]:
    """How many active users hold a seat of each product."""
    columns = [func.count().filter(getattr(User, f"seat_{p.value}").is_(True)) for p in PRODUCTS]
    used = (
        await session.execute(
            select(*columns).where(User.account_id == account_id, User.status == UserStatus.active)
        )
    ).one()
    return {p: int(used[i]) for i, p in enumerate(PRODUCTS)}


async def usage(
    session: AsyncSession, account: Account, reserved: Reservations
) -> dict[SeatProduct, SeatUsage]:
    used = await held(session, account.id)
    pending = await reserved(session, account.id)
    return {p: SeatUsage(p, seat_limit(account, p), used[p], int(pending.get(p, 0))) for p in PRODUCTS}


def _refuse(product: SeatProduct, seat: SeatUsage) -> Conflict:
    return Conflict(
        "seat_limit_reached",
        f"No {product.value} seat is free: {seat.used} used and {seat.reserved} reserved by "
        f"invitations of a limit of {seat.limit}. Raise the limit or free a seat first.",
    )


@dataclass
class SeatLedger:
    """Free seats counted once and then kept in memory: bulk imports check seats without a query a row."""

    usage: dict[SeatProduct, SeatUsage]
    taken: dict[SeatProduct, int]
    reserved: Reservations

    @classmethod
    async def load(cls, session: AsyncSession, account_id: uuid.UUID, reserved: Reservations) -> SeatLedger:
        account = await session.get(Account, account_id)
        assert account is not None
        return cls(await usage(session, account, reserved), dict.fromkeys(PRODUCTS, 0), reserved)

    async def refresh(self, session: AsyncSession, account_id: uuid.UUID) -> None:
        """Lock the account and recount, at the start of each batch (others may have taken seats)."""
        account = await lock_account(session, account_id)
        self.usage = await usage(session, account, self.reserved)
        self.taken = dict.fromkeys(PRODUCTS, 0)

    def take(self, products: Iterable[SeatProduct]) -> None:
        wanted = list(products)
        for product in wanted:
            if self.usage[product].available - self.taken[product] < 1:
                raise _refuse(product, self.usage[product])
        for product in wanted:
            self.taken[product] += 1


async def require_available(
    session: AsyncSession,
    account: Account,
    wanted: Iterable[SeatProduct],
    *,
    reserved: Reservations,
    already_held: Iterable[SeatProduct] = (),
    releasing_reservation: Iterable[SeatProduct] = (),
) -> None:
    """Refuse (409) to hand out seats beyond the limit; seats already held or reserved don't count twice."""
    extra = [p for p in wanted if p not in set(already_held)]
    if not extra:
        return
    await lock_account(session, account.id)  # concurrent requests check one after the other
    current = await usage(session, account, reserved)
    released = set(releasing_reservation)
    for product in extra:
        seat = current[product]
        free = seat.limit - seat.used - seat.reserved + (1 if product in released else 0)
        if free < 1:
            raise _refuse(product, seat)
