"""Platform events (issue 16): what happened in an account that people or systems may want to hear
about — a credit request filed, a budget threshold crossed, a ticket replied — recorded once, in the
transaction that made it happen, and fanned out after commit by the job queue to the subscribers
(in-app and e-mail notifications, webhooks). See docs/notifications.md."""
