"""mailferry: move whole mailboxes between mail systems, faithfully and without duplicates."""

__version__ = "0.1.0"
