"""The events tests use the gateway's fixtures (a local upstream, an app that reaches it, an account
with models: thresholds are crossed by real gateway calls) and the integrations' app that may reach
private addresses (a failing test connection)."""

from tests.gateway.conftest import (  # noqa: F401
    anthropic_upstream,
    gateway_app,
    gateway_settings,
    org,
    upstream,
)
from tests.integrations.conftest import private_app, private_client  # noqa: F401
