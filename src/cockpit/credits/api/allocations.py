"""Credits API: allocations (being built)."""
