"""Background jobs of notifications: imported by ``cockpit.tasks`` so that every worker knows them."""
