"""The one state database: one engine factory and the schema of every component in it.

engine      ``open_database(url)``: one Engine per process and URL (WAL, ``BEGIN IMMEDIATE``,
            ``synchronous=FULL``, foreign keys, busy timeout on SQLite); errors -> StateError
tables      every table, in one MetaData
schema      every component's table set and version, and the one upgrade path
sync_state  ``SqlStateStore``: the sync state (the ``StateStore`` port; SQLite or PostgreSQL)
batches     ``BatchStore``: endpoints, batches, mailboxes, runs, failures, services
records     the rows ``BatchStore`` hands out
progress    per-folder counts of a migration pair, for the batch service's mailbox view
auth        ``AuthTables``: the web app's admin password, tokens and sessions (queries only)
"""
