"""The pure core of mailferry: no sockets, no databases, no logging setup.

Glossary
--------
Account
    One user's mailbox on one server, the unit of migration.
Endpoint
    How to reach an account: scheme (TLS mode), host, port, user, optional admin (authorization) user.
Folder
    What IMAP calls a mailbox: a named container of messages inside an account.
Message
    One stored email: its exact RFC 822 bytes, flags, keywords and received date (INTERNALDATE).
Role
    The special use of a folder (Sent, Drafts, Trash, Junk, Archive, ...), from RFC 6154 or well-known names.
Pair
    A source account and a target account migrated together; state is kept per pair.
Intent
    A record, written before a message is sent to the target, that makes an interrupted copy reconcilable.
Run
    One execution of a sync over one pair.
Batch
    Many pairs migrated together (the migration service).
Collection
    A calendar, task list or address book on a CalDAV/CardDAV server (``items.Collection``).
Item
    One event series, task, journal entry or contact: one DAV resource, one UID (``items.Item``); its
    identity is the UID, or the SHA-256 of its normalised content when it has none.
"""
