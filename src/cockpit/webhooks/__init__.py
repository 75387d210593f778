"""Webhooks (issue 16): endpoints that receive platform events, signed per the Standard Webhooks
spec, delivered by the job queue with retries, logged and replayable."""
