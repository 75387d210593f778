"""Background jobs of tickets: imported by ``cockpit.tasks`` so that every worker knows them."""
