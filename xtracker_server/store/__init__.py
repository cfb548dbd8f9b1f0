"""SQLite storage: one module per table group; every function that touches tenant data takes
``space_id``. Functions here are synchronous and take a connection: the server runs them in its
group-commit writer or on a reader thread, the CLI runs them directly."""
