"""Agents: assistants with instructions, a model and the tools of some integrations."""
