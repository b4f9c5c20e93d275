"""Microsoft Graph (Microsoft 365): the only package that speaks Graph's HTTP and JSON.

- ``session``: one mailbox's HTTP session: Bearer tokens, Graph's throttling rules paced in advance
  and its 429/503 waited out, and the one place where HTTP failures become mailferry errors.
- ``roles``: what an app-only token may do (its ``roles`` claim), for ``endpoint test``.
"""
