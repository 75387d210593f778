"""The console's number, money and date filters: exact values in, text out, no float anywhere."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from cockpit.console import formatting as fmt
from cockpit.console.web import templates


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("18777.77446"), "18,777.77"),
        (Decimal("12000"), "12,000.00"),
        (Decimal("0.005"), "0.01"),  # half up
        (Decimal("-1234.565"), "-1,234.57"),
        (Decimal("-0.001"), "0.00"),  # no "-0.00"
        (0, "0.00"),
        (1_234_567, "1,234,567.00"),
    ],
)
def test_credits_have_separators_and_two_decimals(value: Decimal | int, text: str) -> None:
    assert fmt.credits_text(value) == text


def test_credits_in_a_page_carry_the_exact_value_on_hover() -> None:
    html = fmt.credits_html(Decimal("18777.77446"))
    assert html == '<span class="amount" title="18777.77446">18,777.77</span>'


def test_a_credit_keeps_its_plus_sign_inside_the_amount() -> None:
    assert fmt.signed_credits_html(Decimal(5000)) == '<span class="amount" title="+5000">+5,000.00</span>'
    assert fmt.signed_credits_html(Decimal("-12.5")) == '<span class="amount" title="-12.5">-12.50</span>'
    assert fmt.signed_credits_html(Decimal(0)) == '<span class="amount" title="0">0.00</span>'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.00018705"), "$0.0001871"),  # 4 significant digits below $1
        (Decimal("0.000067"), "$0.000067"),
        (Decimal("0.0099999"), "$0.01"),
        (Decimal("0.642351"), "$0.6424"),
        (Decimal("0.5"), "$0.50"),  # never coarser than the cent
        (Decimal("0.04995"), "$0.04995"),
        (Decimal("0.9999951"), "$1.00"),
        (Decimal("1234.5678"), "$1,234.57"),
        (Decimal("1.5"), "$1.50"),
        (Decimal(0), "$0.00"),
        (Decimal("-0.00018705"), "-$0.0001871"),
    ],
)
def test_usd_to_the_cent_from_one_dollar_and_four_significant_digits_below(value: Decimal, text: str) -> None:
    assert fmt.usd_text(value) == text


def test_usd_in_a_page_shows_the_exact_amount_only_when_rounded() -> None:
    assert fmt.usd_html(Decimal("0.00018705")) == '<span class="amount" title="$0.00018705">$0.0001871</span>'
    assert fmt.usd_html(Decimal("2.5")) == '<span class="amount">$2.50</span>'


def test_prices_stay_exact() -> None:
    assert [fmt.price_text(Decimal(v)) for v in ("0.15", "2.5", "0.000125", "1500")] == [
        "$0.15",
        "$2.50",
        "$0.000125",
        "$1,500.00",
    ]


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        fmt.credits_text(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fmt.usd_text(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("1,000", Decimal(1000)),
        ("1,234,567.25", Decimal("1234567.25")),
        ("1500", Decimal(1500)),
        (" 2 500 ", Decimal(2500)),
    ],
)
def test_typed_numbers_with_separators_parse(typed: str, value: Decimal) -> None:
    assert fmt.parse_decimal(typed) == value


@pytest.mark.parametrize("typed", ["1,00", "12,34.5", "abc", "", "NaN", "Infinity"])
def test_malformed_numbers_do_not_parse(typed: str) -> None:
    assert fmt.parse_decimal(typed) is None


def test_one_date_format_in_the_accounts_time_zone() -> None:
    moment = datetime(2026, 1, 12, 23, 30, tzinfo=UTC)
    paris = ZoneInfo("Europe/Paris")
    assert fmt.datetime_text(moment, paris) == "13 Jan 2026, 00:30"
    assert fmt.date_text(moment, paris) == "13 Jan 2026"
    assert fmt.date_text(date(2026, 12, 1)) == "1 Dec 2026"
    assert fmt.datetime_text(None) == "—"


def test_filters_render_in_templates_with_the_page_time_zone() -> None:
    source = (
        "{{ c|credits }} {{ c|credits_text }} {{ c|exact }} {{ u|usd }} {{ n|number }} "
        "{{ m|date }} {{ m|datetime }} {{ m|when }}"
    )
    html = templates.env.from_string(source).render(
        c=Decimal("18777.77446"),
        u=Decimal("0.00018705"),
        n=1234567,
        m=datetime(2026, 1, 12, 23, 30, tzinfo=UTC),
        tz=ZoneInfo("America/New_York"),
    )
    assert html == (
        '<span class="amount" title="18777.77446">18,777.77</span> 18,777.77 18,777.77446 '
        '<span class="amount" title="$0.00018705">$0.0001871</span> 1,234,567 '
        "12 Jan 2026 12 Jan 2026, 18:30 "
        '<time datetime="2026-01-12T23:30:00+00:00" title="2026-01-12T23:30:00+00:00">'
        "12 Jan 2026, 18:30</time>"
    )
