"""The database: the :class:`~monitor.store.database.Store` facade, its tables, each
concern's queries, the migrations, and what waits while the database is unreachable."""
