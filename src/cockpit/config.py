"""Every knob of Cockpit, read from ``COCKPIT_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


def normalize_database_url(url: str) -> str:
    """Accept the plain ``sqlite:///`` and ``postgresql://`` forms and pick the async driver."""
    url = url.strip()
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("postgresql+psycopg2://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    raise ValueError(
        "COCKPIT_DATABASE_URL must start with sqlite:// or postgresql:// "
        "(sqlite+aiosqlite:// and postgresql+asyncpg:// are accepted too)"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COCKPIT_", extra="ignore")

    env: Environment = Environment.development
    data_dir: Path = Path("var")
    database_url: str = ""
    secret_key: SecretStr | None = None
    base_url: str = "http://127.0.0.1:8000"

    # Console sessions
    session_idle_minutes: int = Field(default=30, ge=1)
    session_absolute_hours: int = Field(default=12, ge=1)

    # Failed-login throttle: delays start after ``login_delay_after`` failures and grow,
    # and no more than the hourly maxima are accepted.
    login_max_failures_per_hour: int = Field(default=100, ge=1)
    login_ip_max_failures_per_hour: int = Field(default=500, ge=1)
    login_delay_after: int = Field(default=5, ge=1)
    login_max_delay_seconds: int = Field(default=300, ge=1)

    # Invitation links expire after this many days.
    invitation_days: int = Field(default=7, ge=1, le=90)

    # Outgoing e-mail (invitations, notifications)
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "cockpit@localhost"
    smtp_starttls: bool = True

    # Request bodies (bytes), refused with 413 as soon as they pass the limit while streaming in:
    # gateway calls, the REST API and console forms, console file uploads (CSV imports), and
    # anything sent without valid credentials (sign-in, invitation acceptance), which is small.
    max_body_bytes_gateway: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_body_bytes_api: int = Field(default=1024 * 1024, ge=1024)
    max_body_bytes_upload: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_body_bytes_anonymous: int = Field(default=64 * 1024, ge=1024)
    # `cockpit serve`: an idle keep-alive connection is closed after this many seconds. Above the
    # idle expiry of common client pools and load balancers (60 s), so that it is the client that
    # closes first and never sends a request on a connection the server is closing.
    keepalive_seconds: int = Field(default=75, ge=1, le=3600)

    # Provider base URLs on loopback or private networks (self-hosted vLLM/Ollama, tests).
    allow_private_upstreams: bool = False
    # Integrations that run a local process (MCP over stdio): off unless the operator trusts every
    # administrator with a shell on this machine.
    allow_stdio_integrations: bool = False

    # Gateway: upstream timeouts (seconds). The read timeout is the longest silence tolerated
    # (before the first byte and between stream chunks).
    upstream_connect_timeout: float = Field(default=10.0, gt=0)
    upstream_read_timeout: float = Field(default=300.0, gt=0)
    # Gateway: the upstream connection pool (see kit/upstream_http.py). At most this many open
    # connections in all and per upstream host; calls beyond them wait for a free one.
    upstream_pool_limit: int = Field(default=512, ge=1)
    upstream_pool_limit_per_host: int = Field(default=256, ge=1)
    # Idle connections are closed after this many seconds, before the upstream closes them itself
    # (uvicorn and node do after 5 s): a POST on a connection the upstream is closing fails and is
    # never retried, since the upstream may have started (and billed) the completion.
    upstream_keepalive_seconds: float = Field(default=4.0, gt=0)
    # An HTTP proxy for every upstream (e.g. http://proxy.internal:3128; credentials in the URL);
    # without it HTTPS_PROXY/HTTP_PROXY are used. NO_PROXY is honoured by both.
    upstream_proxy: str | None = None
    # CA certificates (PEM file) trusted for upstreams instead of the system's trust store, and a
    # client certificate (PEM; its key in the same file or in upstream_client_key) for upstreams
    # that require one.
    upstream_ca_bundle: FilePath | None = None
    upstream_client_cert: FilePath | None = None
    upstream_client_key: FilePath | None = None
    # Usage recording: each finished call is appended to a journal file at once, then written to
    # the database in batches at least this often (seconds) or when this many are waiting.
    usage_flush_seconds: float = Field(default=0.25, gt=0)
    # Where the batches are written: "process" (a process of its own, started by the server: the
    # work does not compete with the gateway for the interpreter lock) or "thread".
    usage_writer: Literal["process", "thread"] = "process"
    # The analytics rollups take in the newly recorded calls this often (seconds): the most a view
    # of whole days waits for a call is this (the calls since are read directly, so none is missed).
    rollup_seconds: int = Field(default=5, ge=1, le=3600)
    # An account's rollups keep its people, tokens and the pairs with them once they hold this many
    # calls (rebuilt then): below it those views read the account's calls, which are few enough, and
    # the rollups of many small accounts stay small (docs/analytics-rollups.md). 0: every account.
    rollup_people_from: int = Field(default=200_000, ge=0)
    # Credit leases (credits a gateway process reserved for a member's calls): renewed while the
    # process runs, swept this long after it stopped; given back after this much idle time.
    credit_lease_ttl_seconds: float = Field(default=120.0, gt=0)
    credit_lease_idle_seconds: float = Field(default=2.0, gt=0)
    usage_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # The gateway's in-memory callers and catalogues: reloaded in the background once this old (a
    # safety net; changes made through Cockpit apply at once, see gateway/invalidation.py).
    gateway_cache_ttl_seconds: float = Field(default=5.0, gt=0)
    # Background jobs (docs/jobs.md) run from one queue in the database. On: the server process also
    # runs a queue worker (a single-process deployment: `make demo`). Off: run `cockpit worker`
    # (any number of them, on any machine; with the server's worker too, they do not clash).
    credits_scheduler: bool = True
    # Where that worker runs: "process" (a process of its own, started and stopped by the server: jobs
    # do not compete with the gateway for the interpreter lock; jobs/embedded.py) or "loop" (a task on
    # the server's event loop).
    server_jobs: Literal["process", "loop"] = "process"
    # Credit cycles roll over on time by themselves: a roll-over job is queued this often (seconds).
    credits_scheduler_seconds: float = Field(default=30.0, gt=0)
    # How often an idle worker looks for due jobs, how long a claimed job stays its worker's without
    # renewal (a dead worker's job is handed back after this), jobs run at once by one worker,
    # seconds a stopping worker lets its jobs finish.
    jobs_poll_seconds: float = Field(default=1.0, gt=0)
    jobs_lease_seconds: float = Field(default=60.0, ge=1)
    jobs_concurrency: int = Field(default=4, ge=1, le=64)
    jobs_grace_seconds: float = Field(default=20.0, ge=0)
    # A failed attempt is retried after this, doubling each time (at most an hour).
    jobs_retry_seconds: float = Field(default=10.0, gt=0)
    # Finished jobs are kept this long (the jobs page, idempotency keys), then pruned.
    jobs_keep_days: int = Field(default=7, ge=1)
    # Failed sign-in attempts (e-mail, IP: personal data) are deleted once this old by a daily job;
    # the throttle itself looks back one hour.
    login_failures_keep_days: int = Field(default=1, ge=1)
    # The model that suggests a new conversation's title from its first exchange (a small, cheap
    # one); empty: the conversation's own model.
    conversation_title_model: str = Field(default="", max_length=200)
    # Files uploaded into conversations (docs/conversations.md): stored under <data_dir>/files, each
    # at most this many bytes, and at most this many bytes in all per account (0: no quota). An
    # upload through the REST API or a console form is also bounded by the request body limits above.
    files_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    files_account_quota_bytes: int = Field(default=1024 * 1024 * 1024, ge=0)
    # Webhooks (docs/webhooks.md). Endpoints on loopback or private networks (tests, an in-house
    # receiver): off by default; metadata and link-local addresses are refused whatever this says.
    webhooks_allow_private: bool = False
    # The longest a receiver may take to answer one attempt (seconds).
    webhooks_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Seconds to wait before each retry after a failed attempt: one delivery is tried at most
    # 1 + len(schedule) times (a JSON list in the environment, e.g. "[5, 30, 120]").
    webhooks_retry_schedule: tuple[float, ...] = (5, 30, 120, 600, 3600, 21600, 43200)
    # An endpoint whose attempts fail this many times in a row (no success between) is disabled
    # and the account's administrators are told (event webhook.disabled).
    webhooks_disable_after_failures: int = Field(default=20, ge=1)

    # Billing with Stripe (issue 17): without a secret key billing is "not connected" and owners add
    # credits by hand. ``stripe_api_base`` points the SDK at another server (tests, staging).
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = None
    # Top-up packs sold through Checkout: (credits, price in cents, currency).
    billing_top_up_packs: tuple[tuple[int, int, str], ...] = (
        (1_000, 1_000, "usd"),
        (5_000, 4_750, "usd"),
        (20_000, 18_000, "usd"),
    )

    @property
    def usage_journal_dir(self) -> Path:
        return self.data_dir / "usage-journal"

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("COCKPIT_BASE_URL must be an http(s) URL such as https://cockpit.example.com")
        return value.rstrip("/")

    @field_validator("upstream_proxy")
    @classmethod
    def _check_upstream_proxy(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "COCKPIT_UPSTREAM_PROXY must be an http(s) URL such as http://proxy.internal:3128"
            )
        return value

    @model_validator(mode="after")
    def _check_client_certificate(self) -> Settings:
        if self.upstream_client_key is not None and self.upstream_client_cert is None:
            raise ValueError("COCKPIT_UPSTREAM_CLIENT_KEY needs COCKPIT_UPSTREAM_CLIENT_CERT")
        return self

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'cockpit.db'}"
        self.database_url = normalize_database_url(self.database_url)
        if self.env is Environment.production and self.secret_key is None:
            raise ValueError("COCKPIT_SECRET_KEY is required when COCKPIT_ENV=production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    def resolved_secret_key(self) -> str:
        """The secret key; outside production one is generated once and kept in the data dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process generated it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
