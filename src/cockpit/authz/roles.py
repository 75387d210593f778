"""The roles a person has in an account (stored on ``users.role``; what each may do: ``permissions``)."""

from __future__ import annotations

from enum import StrEnum


class UserRole(StrEnum):
    owner = "owner"
    admin = "admin"
    member = "member"
