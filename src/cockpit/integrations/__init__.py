"""Integrations: MCP servers and HTTP services (OpenAPI) whose tools agents may call."""
