"""Background jobs of webhooks: imported by ``cockpit.tasks`` so that every worker knows them."""
