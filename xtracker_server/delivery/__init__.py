"""Delivery: the outbox worker, the HTTP sender and one adapter per destination kind."""
