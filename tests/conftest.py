"""Fixtures shared by all tests.

``store_url`` is a fresh, empty database for one test, on each backend in turn: a SQLite
file in ``tmp_path``, and a new PostgreSQL database (dropped afterwards) on the session's
server. That server is a throw-away PostgreSQL started by the first test that needs it
(:mod:`postgres_server`; ``./dev test`` installs the binaries) or, when
``MONITOR_TEST_POSTGRES_URL`` is set (``postgresql+psycopg://user@host/db``, a role that may
CREATE DATABASE), an existing one. ``store`` is a migrated Store on ``store_url``;
service-level tests pass ``store_url`` on as ``storage={"url": store_url}``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from mlflow_server import MlflowServer, MlflowUnavailable
from postgres_server import Databases, PostgresServer, PostgresUnavailable

from monitor.store.database import Store

STORE_BACKENDS = ["sqlite", "postgresql"]
POSTGRES_URL_ENV = "MONITOR_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[Databases]:
    """Creates and drops the tests' PostgreSQL databases. Fails (never skips) when there is
    no PostgreSQL: otherwise the PostgreSQL half of the suite would silently never run."""
    server = None
    admin_url = os.environ.get(POSTGRES_URL_ENV)
    if not admin_url:
        try:
            server = PostgresServer()
            server.__enter__()  # on failure it removes its temp dir
        except PostgresUnavailable as exc:
            pytest.fail(f"cannot start the tests' PostgreSQL server: {exc}", pytrace=False)
        admin_url = server.url()
    databases = Databases(admin_url, file_copy=server is not None)
    try:
        yield databases
    finally:
        databases.close()
        if server is not None:
            server.close()


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MlflowServer]:
    """A real MLflow tracking server and registry (:mod:`mlflow_server`), started by the
    first test that needs it. Fails (never skips) when it cannot start."""
    try:
        server = MlflowServer().__enter__()  # on failure it removes its temp dir
    except MlflowUnavailable as exc:
        pytest.fail(f"cannot start the tests' MLflow server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'monitor.db'}"
        return
    databases: Databases = request.getfixturevalue("postgres_databases")
    url = databases.create()
    try:
        yield url
    finally:
        databases.drop(url)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()
