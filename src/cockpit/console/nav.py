"""The left navigation: sections as in the seeds; only pages that exist, only those the viewer may open."""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.auth.actor import Actor
from cockpit.authz.permissions import Permission


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    icon: str
    permission: Permission | None = None


@dataclass(frozen=True)
class NavSection:
    title: str
    items: tuple[NavItem, ...]


SECTIONS: tuple[NavSection, ...] = (
    NavSection(
        "CONTROL",
        (
            NavItem("Users", "/users", "users", Permission.users_read),
            NavItem("Groups", "/groups", "layers", Permission.users_read),
            NavItem("Projects", "/projects", "folder"),
            NavItem("Access policies", "/policies", "lock", Permission.policies_manage),
            NavItem("Audit log", "/audit", "shield", Permission.audit_read),
        ),
    ),
    NavSection("FINANCE", (NavItem("Credits & Allocations", "/credits", "wallet", Permission.credits_own),)),
    NavSection("OPERATIONS", (NavItem("Request log", "/requests", "activity"),)),
    NavSection(
        "ACCOUNT",
        (
            NavItem("Dashboard", "/", "home"),
            NavItem("Organisation", "/account", "building"),
            NavItem("Models", "/models", "cpu", Permission.providers_manage),
            NavItem("API tokens", "/tokens", "key"),
        ),
    ),
)


@dataclass(frozen=True)
class NavEntry:
    item: NavItem
    active: bool


def navigation(actor: Actor, path: str) -> list[tuple[str, list[NavEntry]]]:
    result = []
    for section in SECTIONS:
        entries = [
            NavEntry(
                item, active=(path == item.href or (item.href != "/" and path.startswith(item.href + "/")))
            )
            for item in section.items
            if item.permission is None or actor.can(item.permission)
        ]
        if entries:
            result.append((section.title, entries))
    return result
