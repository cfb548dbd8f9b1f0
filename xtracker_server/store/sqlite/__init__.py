"""The SQLite backend of the Store protocol (store/api.py): the embedded default.

``sqlite_store.py`` implements the protocol's operations on the modules beside it (one per
area, each a set of functions of a ``sqlite3.Connection``); ``runtime.py`` is the store itself
(its writer, readers, the report rollup's thread); the writer runs in a process of its own
(``writer_process.py``, ``writer_child.py``) or a thread (``writer.py``), and runs only the
named operations of ``operations.py``. Nothing outside ``store/`` imports this package: it is
reached through ``store.api.open_store``.
"""
