"""Every ORM model, imported once so that the metadata is complete (Alembic, tests)."""

from cockpit.accounts.models import Account
from cockpit.audit.models import AuditEntry
from cockpit.auth.models import ApiToken, LoginFailure, LoginSession
from cockpit.kit.db import Base
from cockpit.users.models import User

metadata = Base.metadata

__all__ = ["Account", "ApiToken", "AuditEntry", "LoginFailure", "LoginSession", "User", "metadata"]
