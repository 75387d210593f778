"""Request and response bodies of the integrations catalogue.

Secrets (API key value, bearer token, password, client secret) come in as ``SecretStr`` and never go
out: a read model carries ``has_secret`` and ``secret_last4`` only."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from cockpit.integrations.models import AuthType, Integration, IntegrationKind, Transport
from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.kit.text import MAX_DEPTH, Unstorable, find_unstorable

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,99}$"
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024

Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=SLUG_PATTERN)]
Url = Annotated[str, Field(min_length=1, max_length=2000)]
Short = Annotated[str, Field(min_length=1, max_length=200)]
Secret = Annotated[SecretStr, Field(min_length=1, max_length=4000)]
# Credits per tool call: a string or a number, at least 0, at most 6 decimal places.
PriceCredits = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6, allow_inf_nan=False)]
Timeout = Annotated[int, Field(ge=1, le=300)]


class _Strict(InputSchema):
    """Text that cannot be stored (NUL, a lone surrogate) is refused wherever it is, secrets too."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        try:
            find_unstorable(data, root="", max_depth=MAX_DEPTH)
        except Unstorable as exc:
            raise ValueError(str(exc)) from None
        return data


class AuthNone(_Strict):
    type: Literal["none"]


class AuthApiKey(_Strict):
    type: Literal["api_key"]
    in_: Literal["header", "query"] = Field(default="header", alias="in")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
    value: Secret | None = None  # left out on an update: the stored one is kept


class AuthBearer(_Strict):
    type: Literal["bearer"]
    token: Secret | None = None


class AuthBasic(_Strict):
    type: Literal["basic"]
    username: str = Field(min_length=1, max_length=200, pattern=r"^[^:\s]+$")
    password: Secret | None = None


class AuthClientCredentials(_Strict):
    type: Literal["oauth2_client_credentials"]
    token_url: Url
    client_id: Short
    client_secret: Secret | None = None
    scope: str = Field(default="", max_length=1000)


class AuthUser(_Strict):
    type: Literal["oauth2_user"]
    authorize_url: Url
    token_url: Url
    client_id: Short
    client_secret: Secret | None = None
    scope: str = Field(default="", max_length=1000)


Auth = Annotated[
    AuthNone | AuthApiKey | AuthBearer | AuthBasic | AuthClientCredentials | AuthUser,
    Field(discriminator="type"),
]


def check_document(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """An OpenAPI 3 document of at most MAX_DOCUMENT_BYTES; ValueError saying what is wrong."""
    if value is None:
        return None
    if len(json.dumps(value)) > MAX_DOCUMENT_BYTES:
        raise ValueError(
            f"the OpenAPI document has at most {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB of JSON"
        )
    version = value.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        raise ValueError('the OpenAPI document must be OpenAPI 3 (an "openapi": "3.x" field)')
    if not isinstance(value.get("paths"), dict):
        raise ValueError('the OpenAPI document has no "paths" object')
    return value


class IntegrationCreate(_Strict):
    name: str = Field(min_length=1, max_length=100)
    slug: Slug | None = None  # derived from the name when left out
    description: str = Field(default="", max_length=1000)
    kind: IntegrationKind
    transport: Transport | None = None  # streamable_http for mcp, http for openapi
    url: Url
    openapi_document: dict[str, Any] | None = None
    auth: Auth = Field(default_factory=lambda: AuthNone(type="none"))
    price_credits: PriceCredits = Decimal(0)
    timeout_seconds: Timeout = 30
    enabled: bool = True

    @field_validator("openapi_document")
    @classmethod
    def _document(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_document(value)


class IntegrationChange(_Strict):
    """Fields left out are unchanged. ``auth`` replaces the settings; its secret left out keeps the
    stored one (when the type is the same)."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    slug: Slug | None = None
    description: str | None = Field(default=None, max_length=1000)
    transport: Transport | None = None
    url: Url | None = None
    openapi_document: dict[str, Any] | None = None
    auth: Auth | None = None
    price_credits: PriceCredits | None = None
    timeout_seconds: Timeout | None = None
    enabled: bool | None = None

    @field_validator("openapi_document")
    @classmethod
    def _document(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_document(value)


class ToolOut(OutputSchema):
    name: str
    description: str
    input_schema: dict[str, Any]


class IntegrationOut(OutputSchema):
    id: uuid.UUID
    name: str
    slug: str
    description: str
    kind: IntegrationKind
    transport: Transport
    url: str
    has_openapi_document: bool
    auth_type: AuthType
    auth_settings: dict[str, Any]
    has_secret: bool
    secret_last4: str | None
    enabled: bool
    price_credits: str
    timeout_seconds: int
    tools: list[ToolOut]
    tools_listed_at: datetime | None
    last_test_ok: bool | None
    last_test_message: str | None
    created_at: datetime

    @classmethod
    def of(cls, integration: Integration) -> IntegrationOut:
        return cls(
            id=integration.id,
            name=integration.name,
            slug=integration.slug,
            description=integration.description,
            kind=integration.kind,
            transport=integration.transport,
            url=integration.url,
            has_openapi_document=integration.openapi_document is not None,
            auth_type=integration.auth_type,
            auth_settings=dict(integration.auth_settings or {}),
            has_secret=integration.secret_encrypted is not None,
            secret_last4=integration.secret_last4,
            enabled=integration.enabled,
            price_credits=f"{Decimal(integration.price_credits).quantize(Decimal('0.000001')):f}",
            timeout_seconds=integration.timeout_seconds,
            tools=[ToolOut.model_validate(t) for t in integration.tools or []],
            tools_listed_at=integration.tools_listed_at,
            last_test_ok=integration.last_test_ok,
            last_test_message=integration.last_test_message,
            created_at=integration.created_at,
        )


class IntegrationList(OutputSchema):
    items: list[IntegrationOut]
    meta: PageMeta


class IntegrationDeleted(OutputSchema):
    id: uuid.UUID


class TestResult(OutputSchema):
    ok: bool
    message: str
    tools: list[ToolOut]


class ToolList(OutputSchema):
    items: list[ToolOut]
    listed_at: datetime | None
