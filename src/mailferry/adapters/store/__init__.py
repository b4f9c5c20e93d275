"""The one state database: one engine factory and the schema of every component in it.

engine      ``open_database(url)``: one Engine per process and URL (WAL, ``BEGIN IMMEDIATE``,
            ``synchronous=FULL``, foreign keys, busy timeout on SQLite); errors -> StateError
tables      every table, in one MetaData
schema      every component's table set and version, and the one upgrade path
sync_state  ``SqlStateStore``: the sync state (the ``StateStore`` port; SQLite or PostgreSQL)
dav_state   ``SqlItemStateStore``: the state of calendars and contacts (the ``ItemStateStore``
            port), in the same file and on the same Engine as the mail state
graph_state ``SqlMailboxStateStore``: the state of Microsoft 365 mailboxes moved through Graph
            (the ``MailboxStateStore`` port), in the same file and on the same Engine
batches     ``BatchStore``: endpoints, batches, mailboxes, runs, failures, services
records     the rows ``BatchStore`` hands out
progress    per-folder counts of a migration pair, for the batch service's mailbox view
auth        ``AuthTables``: the web app's admin password, tokens and sessions (queries only)

Nothing is imported here: ``mailferry sync`` into a mail server needs the engine and the sync
state only, not the calendar, Graph or batch tables (import them from their modules).
"""
