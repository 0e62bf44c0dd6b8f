# Generated from functions/usage_meter/models/identifiers.py (make requirements).
"""Limits the service applies, as the client must know them."""

WEBHOOK_MAX_DIMENSIONS = 8
