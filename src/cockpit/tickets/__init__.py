"""Support tickets (issue 16): members file them, administrators handle them in a queue."""
