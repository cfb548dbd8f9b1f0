"""Storage. The rest of the server sees the ``Store`` protocol and ``open_store(url)`` of
``api.py`` alone (and the errors of ``errors.py`` it re-exports). The SQLite backend is the other
modules: one per table group, each function synchronous, taking a connection and, where it
touches tenant data, ``space_id``; ``sqlite_store.py`` runs them as the protocol's operations
in the group-commit writer (``operations.py`` names the writes) or on a reader thread. What is
done to a database besides a store (the start-up check, backup and restore) is a function of
``api.py`` too, taking the store's URL."""
