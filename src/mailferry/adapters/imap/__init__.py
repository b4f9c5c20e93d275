"""The only place that speaks IMAP: sessions (session.py), the account port (account.py), raw bulk traffic (wire.py)."""

from mailferry.adapters.imap.account import ImapAccount
from mailferry.adapters.imap.session import Credentials
from mailferry.adapters.tls import TlsOptions

__all__ = ["Credentials", "ImapAccount", "TlsOptions"]
