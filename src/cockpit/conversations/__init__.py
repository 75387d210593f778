"""Conversations: a person's chat threads with an agent or a model, kept as a tree of messages."""
