"""The allocation overview chart's partial (credits/_allocation_chart.html): its JSON carries every
group's exact figures, the chart is left out without budgets, and the vendored Chart.js is there."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cockpit.console.web import TEMPLATES_DIR, templates
from cockpit.credits.amounts import grouped
from cockpit.credits.figures import AccountFigures, GroupFigures
from cockpit.credits.settings import Overview

STATIC = TEMPLATES_DIR.parent / "static"
CHARTJS = "vendor/chartjs-4.6.1.min.js"


@dataclass
class FakeGroup:
    name: str
    id: uuid.UUID
    is_default: bool = False


class FakeRequest:
    """What the template needs of a request: url_for for static files."""

    def url_for(self, name: str, **params: Any) -> str:
        assert name == "static"
        return f"/static/{params['path']}"


def figures(name: str, **amounts: str) -> GroupFigures:
    values = {k: Decimal(v) for k, v in amounts.items()}
    return GroupFigures(
        group=FakeGroup(name, uuid.uuid4()),  # type: ignore[arg-type]
        members=int(values.pop("members", Decimal(0))),
        monthly=values.get("monthly", Decimal(0)),
        extra=values.get("extra", Decimal(0)),
        distributed=values.get("distributed", Decimal(0)),
        used=values.get("used", Decimal(0)),
        auto_approve_limit=Decimal(0),
    )


def overview(groups: list[GroupFigures]) -> Overview:
    return Overview(
        now=datetime(2026, 11, 22, tzinfo=UTC),
        cycle=None,  # type: ignore[arg-type]
        credit_factor=Decimal(1),
        me=None,
        account=AccountFigures(
            limit=Decimal(200000),
            used=Decimal(0),
            held=Decimal(0),
            budgets=sum((g.budget for g in groups), Decimal(0)),
        ),
        groups=groups,
    )


def render(o: Overview) -> str:
    template = templates.env.get_template("credits/_allocation_chart.html")
    return template.render(o=o, credits=grouped, request=FakeRequest())


def chart_data(html: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="allocation-chart-data">(.*?)</script>', html, re.S
    )
    assert match is not None, html
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_the_json_carries_each_groups_exact_figures() -> None:
    research = figures(
        "Research", members="12", monthly="50000.5", extra="2500", distributed="10250.25", used="1234.567"
    )
    # Micro-credit sums come back from the database as e.g. Decimal("1E+3"): still written plainly.
    ops = figures('Ops <&> "quotes"', members="1", monthly="1000000", distributed="1E+3", used="0.000001")
    unfunded = figures("No budget", members="3")

    html = render(overview([ops, research, unfunded]))

    data = chart_data(html)
    assert data["unit"] == "credits"
    # In the table's order; a group without a budget is not drawn (the table still lists it).
    assert data["groups"] == [
        {
            "id": str(ops.group.id),
            "name": 'Ops <&> "quotes"',
            "members": 1,
            "budget": "1000000",
            "distributed": "1000",
            "available": "999000",
            "used": "0.000001",
        },
        {
            "id": str(research.group.id),
            "name": "Research",
            "members": 12,
            "budget": "52500.5",
            "distributed": "10250.25",
            "available": "42250.25",
            "used": "1234.567",
        },
    ]
    # Amounts are strings that parse to exactly the figures (no float on the way).
    for row, group in zip(data["groups"], [ops, research], strict=True):
        assert Decimal(row["budget"]) == group.budget
        assert Decimal(row["distributed"]) == group.distributed
        assert Decimal(row["used"]) == group.used
        assert Decimal(row["available"]) == group.available
    # A group name cannot end the script element early.
    assert "<&>" not in html
    assert html.count("</script>") == 2
    assert '<canvas id="allocation-chart"' in html
    assert f'data-chartjs="/static/{CHARTJS}"' in html
    assert 'src="/static/js/credits-chart.js"' in html
    assert "largest budgets" not in html


def test_without_budgets_there_is_no_chart() -> None:
    html = render(overview([figures("Default", members="4", distributed="0")]))
    assert html.strip() == ""
    assert render(overview([])).strip() == ""


def test_many_groups_show_the_largest_budgets_with_a_note() -> None:
    groups = [figures(f"G{i:02}", monthly=str(1000 + i)) for i in range(15)]

    html = render(overview(groups))

    names = [row["name"] for row in chart_data(html)["groups"]]
    # The 12 largest budgets (G03 to G14), in the table's order.
    assert names == [f"G{i:02}" for i in range(3, 15)]
    assert "The chart shows the 12 largest budgets of 15 groups; the table lists every group." in html


def test_the_vendored_chart_library_and_script_are_served_files() -> None:
    library = (STATIC / CHARTJS).read_text()
    assert library.startswith("/*!\n * Chart.js v4.6.1\n")
    assert "Released under the MIT License" in library[:300]
    assert "sourceMappingURL" not in library
    script = (STATIC / "js" / "credits-chart.js").read_text()
    assert 'document.addEventListener("htmx:afterSwap"' in script
    assert "allocation-chart-data" in script
    refresh = Path(__file__).parents[2] / "scripts" / "vendor_assets.sh"
    assert "CHARTJS_VERSION=4.6.1" in refresh.read_text()
