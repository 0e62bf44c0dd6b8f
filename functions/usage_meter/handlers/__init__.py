"""One module per Lambda function. Each exposes ``handler`` and ``SETTINGS`` (its env model)."""
