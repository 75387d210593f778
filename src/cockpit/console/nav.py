"""The left navigation: sections as in the seeds; only pages that exist, only those the viewer may open."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    icon: str
    permission: Permission | None = None
    also: tuple[str, ...] = ()  # other addresses that belong to this item (its tabs)
    counter: str | None = None  # the name of a count shown beside the label (see ``navigation``)


@dataclass(frozen=True)
class NavSection:
    title: str
    items: tuple[NavItem, ...]


SECTIONS: tuple[NavSection, ...] = (
    NavSection(
        "CONTROL",
        (
            NavItem("Users", "/users", "users", Permission.users_read, also=("/invitations",)),
            NavItem("Groups", "/groups", "layers", Permission.users_read),
            NavItem("Projects", "/projects", "folder"),
            NavItem("Agents", "/agents", "bot"),
            NavItem("Integrations", "/integrations", "plug"),
            NavItem("Access policies", "/policies", "lock", Permission.policies_manage),
            NavItem(
                "Notifications",
                "/notifications",
                "bell",
                Permission.notifications_manage,
                also=("/webhooks",),
            ),
            NavItem("Support", "/support", "help"),
            NavItem("Audit log", "/audit", "shield", Permission.audit_read),
        ),
    ),
    NavSection(
        "FINANCE",
        (
            NavItem(
                "Credits & Allocations",
                "/credits",
                "wallet",
                Permission.credits_own,
                counter="pending_requests",
            ),
            NavItem("Cost tracking", "/cost-tracking", "activity", Permission.usage_read_all),
        ),
    ),
    NavSection(
        "OPERATIONS",
        (
            NavItem("Conversations", "/conversations", "mail"),
            NavItem("Request log", "/requests", "activity"),
            NavItem("Jobs", "/jobs", "clock", Permission.jobs_manage),
            NavItem("Events", "/events", "list", Permission.jobs_manage),
        ),
    ),
    NavSection(
        "ACCOUNT",
        (
            NavItem("Dashboard", "/", "home"),
            NavItem("Organisation", "/account", "building"),
            NavItem("Usage", "/usage", "list"),
            NavItem("Billing", "/billing", "wallet", Permission.account_write),
            NavItem("Models", "/models", "cpu", Permission.providers_manage),
            NavItem("API tokens", "/tokens", "key"),
        ),
    ),
)


@dataclass(frozen=True)
class NavEntry:
    item: NavItem
    active: bool
    count: int = 0


def _under(path: str, href: str) -> bool:
    return path == href or (href != "/" and path.startswith(href + "/"))


def navigation(
    actor: Actor, path: str, counts: Mapping[str, int] | None = None
) -> list[tuple[str, list[NavEntry]]]:
    """The viewer's sections and items; the item of ``path`` is active; ``counts`` by counter name
    (e.g. ``pending_requests``) are shown beside their items."""
    counts = counts or {}
    result = []
    for section in SECTIONS:
        entries = [
            NavEntry(
                item,
                active=any(_under(path, href) for href in (item.href, *item.also)),
                count=counts.get(item.counter, 0) if item.counter else 0,
            )
            for item in section.items
            if item.permission is None or actor.can(item.permission)
        ]
        if entries:
            result.append((section.title, entries))
    return result
