"""Fixtures shared by all tests.

``store_url`` is a fresh, empty database for one test: a SQLite file in ``tmp_path`` and,
when ``MONITOR_TEST_POSTGRES_URL`` is set (``postgresql+psycopg://user@host/db``), also a
fresh PostgreSQL schema that is dropped afterwards. ``store`` is a migrated Store on it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from monitor.store import Store

STORE_BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("MONITOR_TEST_POSTGRES_URL") else [])


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'monitor.db'}"
        return
    base = sa.make_url(os.environ["MONITOR_TEST_POSTGRES_URL"])
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        # Every connection of the test then creates and finds its tables in that schema only.
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()
