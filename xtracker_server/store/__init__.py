"""Storage. The rest of the server sees the ``Store`` protocol and ``open_store(url)`` of
``api.py`` alone (and the errors of ``errors.py`` it re-exports). The SQLite backend is the other
modules: one per table group, each function synchronous, taking a connection and, where it
touches tenant data, ``space_id``; ``sqlite_store.py`` runs them as the protocol's operations
in the group-commit writer (``operations.py`` names the writes) or on a reader thread, the CLI
runs some of them directly."""
