"""The ``monitor`` command.

monitor serve --config FILE [--host H] [--port P] [--workers N]
monitor consume --config FILE [--metrics-port P]
monitor check-config FILE
monitor db upgrade --config FILE
monitor demo [--speed N] [--port P] [--keep-running] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import logging.config
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor.cli import reference as cli_reference
from monitor.cli import rules as cli_rules
from monitor.logs import log_config
from monitor.settings import ConfigError, Settings, load_settings


def _load(path: str | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"{exc.source}: invalid configuration", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    features = sum(len(m.features) for m in settings.models.values())
    print(f"{args.file}: OK ({len(settings.models)} model(s), {features} feature(s), storage {settings.storage.url})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _load(args.config)
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
        len(settings.models), host, port, workers, _redact(settings.storage.url),
    )  # fmt: skip
    uvicorn.run(
        "monitor.api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logging_config,
        timeout_graceful_shutdown=30,
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

    settings = _load(args.config)
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

    settings = _load(args.config)
    upgrade(settings.storage.url)
    print(f"database {_redact(settings.storage.url)} is at revision {current_revision(settings.storage.url)}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from collectors.files import TableColumns
    from monitor.cli.replay import print_json, print_table, replay

    settings = _load(args.config)
    logging.basicConfig(level=logging.WARNING)
    columns = TableColumns(
        prediction=args.prediction_column,
        latency_ms=args.latency_column,
        id=args.id_column,
        timestamp=args.timestamp_column,
    )
    try:
        collected, rejected = replay(
            settings,
            args.model,
            Path(args.file),
            columns,
            labels=Path(args.labels) if args.labels else None,
            label_id_column=args.id_column,
            label_column=args.label_column,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    except (ValueError, OSError) as exc:
        print(f"monitor replay: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print_json(collected, sys.stdout)
    else:
        window = settings.models[args.model].window
        print_table(collected, sys.stdout, window.size if window.kind == "count" else None)
    if rejected:
        print(f"{rejected} row(s) rejected by validation", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import monitor.cli.demo

    return monitor.cli.demo.main(args)


def _redact(url: str) -> str:
    """A storage URL without its password, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description="Monitor production ML models for drift.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--config", required=True, help="YAML config file")
    serve.add_argument("--host", help="listen address (default: server.host)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port)")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes (default: server.workers)")
    serve.set_defaults(func=cmd_serve)

    consume = commands.add_parser("consume", help="run the Kafka collector alone (no HTTP API)")
    consume.add_argument("--config", required=True, help="YAML config file with a kafka section")
    consume.add_argument("--metrics-port", type=int, help="serve /metrics for Prometheus on this port")
    consume.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
    consume.set_defaults(func=cmd_consume)

    check = commands.add_parser("check-config", help="validate a config file and list every problem")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply Alembic migrations up to the latest revision")
    db_upgrade.add_argument("--config", required=True)
    db_upgrade.set_defaults(func=cmd_db_upgrade)
    cli_reference.add_commands(commands)
    cli_rules.add_commands(commands)

    rep = commands.add_parser("replay", help="evaluate a file against a model's reference, offline")
    rep.add_argument("file", help="CSV, Parquet or JSONL (optionally .gz) with one row per prediction")
    rep.add_argument("--model", required=True)
    rep.add_argument("--config", required=True)
    rep.add_argument("--labels", help="a file of delayed labels (id and label columns) for performance windows")
    rep.add_argument("--prediction-column", default="prediction")
    rep.add_argument("--latency-column")
    rep.add_argument("--id-column", default="id")
    rep.add_argument("--timestamp-column", default="timestamp")
    rep.add_argument("--label-column", default="label", help="the label column of --labels")
    rep.add_argument("--json", action="store_true", help="print the results as JSON")
    rep.add_argument("--no-progress", action="store_true", help="no progress bar")
    rep.set_defaults(func=cmd_replay)

    from monitor.cli.demo import add_arguments as add_demo_arguments

    demo = commands.add_parser("demo", help="run the service on the bundled car-loan drift case and show the alerts")
    add_demo_arguments(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)

