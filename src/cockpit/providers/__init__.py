"""Providers (upstream LLM services) and the model catalogue."""
