"""Throwaway local mail servers and test corpora for tests, the demo and benchmarks.

Nothing in the core imports this package: it starts real programs (``dovecot``) and is meant for
test fixtures and scripts only.
"""

from mailferry.sandbox.dovecot import DovecotServer, SandboxError

__all__ = ["DovecotServer", "SandboxError"]
