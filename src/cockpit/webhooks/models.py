"""The tables of webhooks (filled in by issue 16)."""
