"""The tables of billing (issue 17)."""
