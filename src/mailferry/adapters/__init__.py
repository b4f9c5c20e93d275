"""Adapters: the only code that speaks to servers, databases and the filesystem."""
