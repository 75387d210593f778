"""One durable job queue in the database for every kind of background work (docs/jobs.md)."""
