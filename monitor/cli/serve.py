"""The service commands: ``monitor serve`` (HTTP), ``monitor consume`` (Kafka alone) and
``monitor db upgrade``."""

from __future__ import annotations

import argparse
import logging.config
import os
import sys

from monitor.allocator import limit_malloc_arenas
from monitor.api.http_protocol import DeadlineH11Protocol
from monitor.cli.config import load_or_exit, redact
from monitor.logs import log_config
from monitor.process_tuning import limit_blas_threads


def add_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--config", required=True, help="YAML config file")
    serve.add_argument("--host", help="listen address (default: server.host)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port)")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes (default: server.workers)")
    serve.set_defaults(func=cmd_serve)

    consume = commands.add_parser("consume", help="run the Kafka collector alone (no HTTP API)")
    consume.add_argument("--config", required=True, help="YAML config file with a kafka section")
    consume.add_argument("--metrics-port", type=int, help="serve /metrics for Prometheus on this port (default: none)")
    consume.add_argument(
        "--metrics-host", default="127.0.0.1", help="address for --metrics-port (default: %(default)s)"
    )
    consume.set_defaults(func=cmd_consume)


def add_db_commands(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply Alembic migrations up to the latest revision")
    db_upgrade.add_argument("--config", required=True, help="YAML config file (storage.url)")
    db_upgrade.set_defaults(func=cmd_db_upgrade)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = load_or_exit(args.config, references=True)
    limit_blas_threads()
    limit_malloc_arenas()
    server = settings.server
    host = args.host or server.host
    port = args.port if args.port is not None else server.port
    workers = args.workers or server.workers
    # Each uvicorn worker builds its own app from the file (see monitor.api.app.app_from_environment).
    os.environ["MONITOR_CONFIG_FILE"] = os.path.abspath(args.config)
    if settings.storage.auto_migrate:
        # Once, before the workers start, so they do not race on the schema.
        from monitor.store.migrate import upgrade

        upgrade(settings.storage.url)
    logging_config = log_config(server.log_format, server.log_level)
    logging.config.dictConfig(logging_config)
    logging.getLogger("monitor").info(
        "serving %d model(s) on http://%s:%d with %d worker(s), storage %s",
        len(settings.models), host, port, workers, redact(settings.storage.url),
    )  # fmt: skip
    uvicorn.run(
        "monitor.api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logging_config,
        timeout_graceful_shutdown=30,
        # h11 with a deadline on receiving each request (uvicorn has none of its own).
        http=DeadlineH11Protocol,
        timeout_keep_alive=server.keep_alive_seconds,  # type: ignore[arg-type]  # typed int; a float works
    )
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    """The Kafka collector without the HTTP API: the same pipeline, detectors, store and
    alerts, with /metrics on its own port for Prometheus."""
    import asyncio
    import signal

    from prometheus_client import start_http_server

    from monitor.api.app import create_app
    from monitor.gc_tuning import tune_garbage_collector

    settings = load_or_exit(args.config, references=True)
    limit_blas_threads()
    limit_malloc_arenas()
    if not settings.kafka.topics:
        print(f"{args.config}: kafka.topics is empty: nothing to consume", file=sys.stderr)
        return 2
    if settings.storage.auto_migrate:
        from monitor.store.migrate import upgrade

        upgrade(settings.storage.url)
    logging.config.dictConfig(log_config(settings.server.log_format, settings.server.log_level))
    app = create_app(settings)
    tune_garbage_collector()
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=app.state.metrics.registry)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with app.router.lifespan_context(app):
            logging.getLogger("monitor").info("consuming %s from %s", ", ".join(settings.kafka.topics),
                                              ", ".join(settings.kafka.bootstrap_servers))  # fmt: skip
            await stop.wait()

    asyncio.run(run())
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from monitor.store.migrate import current_revision, upgrade

    settings = load_or_exit(args.config)
    upgrade(settings.storage.url)
    print(f"database {redact(settings.storage.url)} is at revision {current_revision(settings.storage.url)}")
    return 0
