"""Exports of the analytics views (PDF, Excel, CSV) and of the raw calls, made in the background."""
