"""A FAKE Microsoft Graph for tests and benchmarks (Graph cannot run here). Not Microsoft's code,
not a Graph anyone should use: a strict stand-in written from Microsoft's documentation, each
request and answer citing its page.

- ``server``: HTTPS on 127.0.0.1, app-only tokens with ``roles``, Graph's throttling (a 5th
  concurrent request per app and mailbox gets 429 + Retry-After), fault knobs, the route table.
- ``store``: the mailboxes (folders and items, one store for every view of them), with a change
  log for delta queries and a count of the invitations a real Exchange would have sent.
- ``mailbox``, ``importexport``: the mailbox import/export API (``/admin/exchange/mailboxes/...``;
  ``stream`` is its stand-in for Exchange's opaque item stream, ``mailboxfill`` fills a mailbox
  for tests and reads it back).
- ``resources``: calendars/events, contact folders/contacts, To Do lists/tasks.
"""
