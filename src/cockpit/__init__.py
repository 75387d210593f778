"""Cockpit: a self-hosted control plane for an organisation's use of AI."""

__version__ = "0.1.0"
