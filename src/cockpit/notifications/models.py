"""The tables of notifications (filled in by issue 16)."""
