"""The integrations catalogue: an MCP server or an HTTP service described by OpenAPI, how to reach
and authenticate to it, and the tools it offered when last listed. Credentials are stored encrypted
(Fernet, ``kit.secrets``) and shown only as their last four characters."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, MicroDecimal, TimestampMixin


class IntegrationKind(StrEnum):
    mcp = "mcp"  # a Model Context Protocol server
    openapi = "openapi"  # an HTTP service described by an OpenAPI 3 document


class Transport(StrEnum):
    streamable_http = "streamable_http"  # MCP over Streamable HTTP (the default)
    sse = "sse"  # MCP over HTTP+SSE, for older servers
    stdio = "stdio"  # a local process; only with COCKPIT_ALLOW_STDIO_INTEGRATIONS=true
    http = "http"  # an OpenAPI service


class AuthType(StrEnum):
    none = "none"
    api_key = "api_key"  # in a header or a query parameter
    bearer = "bearer"
    basic = "basic"
    oauth2_client_credentials = "oauth2_client_credentials"  # Cockpit fetches and refreshes the token
    oauth2_user = "oauth2_user"  # authorization code with PKCE, one connection per person


def _enum(cls: type[StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=40, validate_strings=True)


class Integration(IdMixin, TimestampMixin, Base):
    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("account_id", "slug"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The identifier access policies and agents name it by (unique in the account).
    slug: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(1000), default="")
    kind: Mapped[IntegrationKind] = mapped_column(_enum(IntegrationKind))
    transport: Mapped[Transport] = mapped_column(_enum(Transport))
    # The MCP endpoint, the OpenAPI service's base URL (or the document's address), or for stdio
    # the command line.
    url: Mapped[str] = mapped_column(String(2000))
    # An OpenAPI document uploaded or fetched (kept so that tools do not depend on the URL staying up).
    openapi_document: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    auth_type: Mapped[AuthType] = mapped_column(_enum(AuthType))
    # What is not secret: header or parameter name, username, token and authorize URLs, client id,
    # scopes.
    auth_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The secret (API key, token, password, client secret), encrypted.
    secret_encrypted: Mapped[str | None] = mapped_column(String(8000))
    secret_last4: Mapped[str | None] = mapped_column(String(4))
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    # Credits charged per tool call (0: the call costs nothing beyond its model calls).
    price_credits: Mapped[Decimal] = mapped_column(MicroDecimal(), default=Decimal(0), server_default="0")
    timeout_seconds: Mapped[int] = mapped_column(default=30, server_default="30")
    # The tools offered when last listed: [{"name", "description", "input_schema"}].
    tools: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    tools_listed_at: Mapped[datetime | None]
    last_test_ok: Mapped[bool | None]
    last_test_message: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class IntegrationToken(IdMixin, TimestampMixin, Base):
    """An OAuth 2.0 access token (and refresh token), encrypted: the integration's own (client
    credentials, ``user_id`` NULL) or one person's (authorization code)."""

    __tablename__ = "integration_tokens"
    __table_args__ = (Index("ix_integration_tokens_integration_user", "integration_id", "user_id"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    access_encrypted: Mapped[str] = mapped_column(String(8000))
    refresh_encrypted: Mapped[str | None] = mapped_column(String(8000))
    expires_at: Mapped[datetime | None]
    scope: Mapped[str] = mapped_column(String(1000), default="")
