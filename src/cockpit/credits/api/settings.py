"""Credits API: settings (being built)."""
