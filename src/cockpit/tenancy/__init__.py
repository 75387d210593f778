"""The tenant every row belongs to (an account) and the lock that serialises its writers."""
