"""The tables of tickets (filled in by issue 16)."""
