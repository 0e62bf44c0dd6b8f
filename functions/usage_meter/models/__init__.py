"""Typed models at the boundaries: webhook requests, queue messages, transcripts, ledger rows."""
