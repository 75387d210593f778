"""How the console writes numbers, money and dates: one place, registered as Jinja filters.

Every amount is a Decimal (or an int) and stays one: nothing here goes through a float.
- credits: thousands separators and 2 decimals, the exact value on hover ("18,777.77", title
  "18777.77446");
- USD: to the cent from $1 up, 4 significant digits below ("$1,234.57", "$0.6423", "$0.0001871");
- prices (USD per million tokens): exact, at least to the cent ("$0.15", "$0.000125");
- dates: in the account's time zone, written the way its locale writes them (``accounts.locale``:
  "12 Jan 2026, 14:05" in en-GB, "Jan 12, 2026, 2:05 PM" in en-US, ...).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from cockpit.kit.money import grouped, plain, usd_rounded
from cockpit.kit.money import usd_text as usd_text  # one rule for pages and reports

CENT = Decimal("0.01")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")


def _decimal(value: Decimal | int) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"an exact amount is needed, not {type(value).__name__}")
    return Decimal(value)


def _sign(text: str) -> str:
    """No "-0.00": an amount that rounds to zero is shown without a sign."""
    return text[1:] if text.startswith("-") and not text.strip("-0.,$") else text


def credits_text(value: Decimal | int) -> str:
    """Credits for reading: 18777.77446 -> "18,777.77", 12000 -> "12,000.00"."""
    rounded = _decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    return _sign(f"{rounded:,.2f}")


def exact_text(value: Decimal | int) -> str:
    """The exact value with separators, for hover text and inputs: 18777.77446 -> "18,777.77446"."""
    return grouped(_decimal(value))


def credits_html(value: Decimal | int) -> Markup:
    """Credits in a page: the readable figure, the exact one on hover."""
    exact = plain(_decimal(value))
    return Markup('<span class="amount" title="{}">{}</span>').format(exact, credits_text(value))


def signed_credits_html(value: Decimal | int) -> Markup:
    """Credits that move a balance: a credit keeps its "+" inside the amount ("+5,000.00", title
    "+5000"); a debit or zero reads as ``credits_html``."""
    if _decimal(value) <= 0:
        return credits_html(value)
    return Markup('<span class="amount" title="+{}">+{}</span>').format(
        plain(_decimal(value)), credits_text(value)
    )


def usd_html(value: Decimal | int) -> Markup:
    """A cost in a page; when the figure is rounded, the exact amount is on hover."""
    amount = _decimal(value)
    if usd_rounded(amount) == amount:
        return Markup('<span class="amount">{}</span>').format(usd_text(amount))
    exact = ("-$" if amount < 0 else "$") + plain(abs(amount))
    return Markup('<span class="amount" title="{}">{}</span>').format(exact, usd_text(amount))


def price_text(value: Decimal | int) -> str:
    """A price per million tokens, exact and at least to the cent: "$0.15", "$2.50", "$0.000125"."""
    text = exact_text(value)
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def number_text(value: int | Decimal) -> str:
    """A count with thousands separators: 12345 -> "12,345"."""
    return format(_decimal(value), ",f")


def without_separators(text: str) -> str:
    """A typed number without its thousands separators: "1,000.5" -> "1000.5" (only when the
    commas group thousands: "1,00" stays as it is, and is refused by the parser)."""
    cleaned = text.strip().replace(" ", "").replace("_", "")
    return cleaned.replace(",", "") if _GROUPED.match(cleaned) else cleaned


def parse_decimal(text: str) -> Decimal | None:
    """A typed number as an exact Decimal, with or without thousands separators ("1,000.5");
    None when it is not a number. Range and precision are the caller's to check."""
    cleaned = without_separators(text)
    try:
        number = Decimal(cleaned) if cleaned else None
    except InvalidOperation:
        return None
    return number if number is not None and number.is_finite() else None


# ---- dates ----

# The account's locale (``accounts.locale``) chooses how dates read: (a day, a moment).
DATE_STYLES = {
    "en-GB": ("{d} {mon} {y}", "{d} {mon} {y}, {H}:{M}"),
    "en-US": ("{mon} {d}, {y}", "{mon} {d}, {y}, {h}:{M} {ampm}"),
    "de-DE": ("{dd}.{m}.{y}", "{dd}.{m}.{y}, {H}:{M}"),
    "fr-FR": ("{dd}/{m}/{y}", "{dd}/{m}/{y} {H}:{M}"),
    "iso": ("{y}-{m}-{dd}", "{y}-{m}-{dd} {H}:{M}"),
}
DEFAULT_STYLE = "en-GB"
# What the account settings offer, with how a date then reads.
LOCALES = {
    "en-GB": "English (UK) — 6 Dec 2026, 14:05",
    "en-US": "English (US) — Dec 6, 2026, 2:05 PM",
    "de-DE": "Deutsch — 06.12.2026, 14:05",
    "fr-FR": "Français — 06/12/2026 14:05",
    "iso": "ISO 8601 — 2026-12-06 14:05",
}


def _parts(moment: date) -> dict[str, str]:
    parts = {
        "d": str(moment.day),
        "dd": f"{moment.day:02d}",
        "m": f"{moment.month:02d}",
        "mon": _MONTHS[moment.month - 1],
        "y": f"{moment.year:04d}",
    }
    if isinstance(moment, datetime):
        parts |= {
            "H": f"{moment.hour:02d}",
            "M": f"{moment.minute:02d}",
            "h": str(moment.hour % 12 or 12),
            "ampm": "AM" if moment.hour < 12 else "PM",
        }
    return parts


def _local(moment: datetime, zone: tzinfo | None) -> datetime:
    if moment.tzinfo is None:  # stored as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone or UTC)


def date_text(moment: date | None, zone: tzinfo | None = None, style: str = DEFAULT_STYLE) -> str:
    """The day (in ``zone`` for a datetime): "12 Jan 2026"; "—" for none."""
    if moment is None:
        return "—"
    if isinstance(moment, datetime):
        moment = _local(moment, zone).date()
    return DATE_STYLES.get(style, DATE_STYLES[DEFAULT_STYLE])[0].format(**_parts(moment))


def datetime_text(moment: datetime | None, zone: tzinfo | None = None, style: str = DEFAULT_STYLE) -> str:
    """A moment in ``zone``: "12 Jan 2026, 14:05"; "—" for none."""
    if moment is None:
        return "—"
    return DATE_STYLES.get(style, DATE_STYLES[DEFAULT_STYLE])[1].format(**_parts(_local(moment, zone)))


def _zone(context: Context) -> tzinfo | None:
    zone = context.get("tz")
    return zone if isinstance(zone, tzinfo) else None


_STYLE: ContextVar[str] = ContextVar("cockpit_date_style", default=DEFAULT_STYLE)


@contextlib.contextmanager
def date_style(locale: str) -> Iterator[None]:
    """Pages rendered inside use this locale's dates (an unknown one: the default)."""
    token = _STYLE.set(locale if locale in DATE_STYLES else DEFAULT_STYLE)
    try:
        yield
    finally:
        _STYLE.reset(token)


def _style(_context: Context) -> str:
    return _STYLE.get()


# The date filters use the page's ``tz`` (the account's time zone, see web.render), or the zone
# they are given: a macro imported without context passes it.


@pass_context
def _date_filter(context: Context, moment: date | None, zone: tzinfo | None = None) -> str:
    return date_text(moment, zone or _zone(context), _style(context))


@pass_context
def _datetime_filter(context: Context, moment: datetime | None, zone: tzinfo | None = None) -> str:
    return datetime_text(moment, zone or _zone(context), _style(context))


@pass_context
def _when_filter(context: Context, moment: datetime | None, zone: tzinfo | None = None) -> Markup:
    """A moment as a <time> element: the account's format, the exact UTC instant on hover."""
    if moment is None:
        return Markup('<span class="muted">—</span>')
    instant = _local(moment, UTC).isoformat()
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(
        instant, datetime_text(moment, zone or _zone(context), _style(context))
    )


def install(env: Environment) -> None:
    """Register the filters on the console's templates."""
    filters: dict[str, Any] = {
        "credits": credits_html,
        "credits_text": credits_text,
        "signed_credits": signed_credits_html,
        "exact": exact_text,
        "plain": plain,
        "usd": usd_html,
        "usd_text": usd_text,
        "price": price_text,
        "number": number_text,
        "date": _date_filter,
        "datetime": _datetime_filter,
        "when": _when_filter,
    }
    env.filters.update(filters)
