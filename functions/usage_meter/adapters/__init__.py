"""Adapters: the only code that knows AWS resources, key layouts and the AssemblyAI SDK."""
