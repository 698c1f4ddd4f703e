"""Schema migrations, run in code: :func:`upgrade` needs no alembic.ini. The Alembic scripts
are in ``monitor/store/migrations``; the same ones run on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from monitor.store.engine import StoreError, engine_for, write_transaction

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 0x6D6F6E69  # advisory lock key; any constant shared by all workers


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection  # env.py runs the migrations on it
    return config


def upgrade(engine_or_url: Engine | str | sa.URL, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` in one transaction; a no-op when already there."""
    _migrate(engine_or_url, revision, command.upgrade, "upgrade")


def downgrade(engine_or_url: Engine | str | sa.URL, revision: str) -> None:
    """Migrate the database down to ``revision`` ("base" drops every table). Loses data."""
    _migrate(engine_or_url, revision, command.downgrade, "downgrade")


def _migrate(
    engine_or_url: Engine | str | sa.URL, revision: str, run: Callable[[Config, str], None], verb: str
) -> None:
    with engine_for(engine_or_url) as engine:
        where = engine.url.render_as_string(hide_password=True)
        try:
            with write_transaction(engine) as conn:
                if conn.dialect.name == "postgresql":
                    # Workers start together: one migrates, the others wait here, then find nothing to do.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
                run(_alembic_config(conn), revision)
        except (DBAPIError, CommandError) as exc:
            raise StoreError(f"cannot {verb} database {where} to revision {revision!r}: {exc}") from exc


def current_revision(engine_or_url: Engine | str | sa.URL) -> str | None:
    """The database's migration revision, or None when it was never migrated."""
    with engine_for(engine_or_url) as engine, engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest migration revision shipped with this code."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"no migrations found in {MIGRATIONS_DIR}")
    return head
