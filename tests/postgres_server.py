"""A throw-away PostgreSQL server for the tests: ``initdb`` into a temp dir, ``pg_ctl start``
on a free loopback port with its socket in that dir, ``pg_ctl stop -m fast`` at the end.

The session fixture in ``tests/conftest.py`` starts one for the whole run and gives every
test its own database (:meth:`PostgresServer.create_database`); a test that needs to stop
the database mid-run starts a server of its own. Debian's ``postgresql`` package provides
the binaries (``./dev test`` installs it); as root, the server runs as the ``postgres`` user
(initdb refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from support import free_port

INSTALL_HINT = "run `./dev test`, which installs Debian's postgresql package (PostgreSQL 15)"
# Durability off: a test database never has to survive a crash of the machine.
FAST_SETTINGS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or the server would not start."""


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl: Debian's newest /usr/lib/postgresql/N/bin, else PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major(p.parent.name), reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    raise PostgresUnavailable(f"the PostgreSQL server binaries (initdb, pg_ctl) are not installed: {INSTALL_HINT}")


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


class PostgresServer:
    """One PostgreSQL cluster in a temp dir. ``start()`` initialises it the first time;
    ``stop()`` and ``start()`` again keep the data (to simulate a database restart);
    ``close()`` stops it and deletes the dir."""

    def __init__(self, port: int | None = None) -> None:
        self.bindir = find_bindir()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "server.log"
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(f"there is no postgres user to run the server as: {INSTALL_HINT}") from None
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self._user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        self._initialised = False
        self.running = False

    # -- URLs -------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    # -- life cycle -------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 60) -> None:
        try:
            done = subprocess.run(
                [str(self.bindir / args[0]), *args[1:]], cwd=self.dir, capture_output=True, text=True,
                timeout=timeout, env={**os.environ, "LC_ALL": "C.UTF-8"}, **self._user,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{args[0]} failed: {exc}") from exc
        if done.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise PostgresUnavailable(
                f"{' '.join(args)} exited with {done.returncode}:\n{done.stdout}{done.stderr}\n{log}"
            )

    def start(self) -> PostgresServer:
        if not self._initialised:
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                "--locale=C.UTF-8", "--no-sync", "--no-instructions",
            )  # fmt: skip
            self._initialised = True
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} {FAST_SETTINGS}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "-t", "30", "start")
        self.running = True
        return self

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: open connections are cut, as when a database goes down."""
        if self.running:
            self.running = False
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Databases:
    """Fresh databases on a server given by an admin URL (one per test): created with a
    unique name, dropped (with any connection still open) afterwards."""

    def __init__(self, admin_url: str, *, file_copy: bool = False) -> None:
        """``file_copy``: create databases by copying template1's files (PostgreSQL 15+), ~5x
        faster than the default on a server without fsync such as :class:`PostgresServer`'s."""
        self.base = sa.make_url(admin_url)
        # AUTOCOMMIT: CREATE/DROP DATABASE cannot run in a transaction.
        self.admin = sa.create_engine(self.base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self._strategy = " STRATEGY FILE_COPY" if file_copy else ""

    def create(self) -> str:
        """A new empty database; returns its URL (with the admin URL's user and password)."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{self._strategy}')
        return self.base.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = sa.make_url(url).database
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.admin.dispose()
