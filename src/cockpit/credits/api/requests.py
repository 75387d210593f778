"""Credits API: requests (being built)."""
