"""The ``monitor rules`` command: the Prometheus alerting rules for the service's metrics.

monitor rules export [--output FILE] [--config FILE] [--service-url URL | --runbook-base URL]
                     [--window-period 5m --for-windows N]

``export`` prints the rules file (YAML, one group ``monitor``; see
:mod:`alerts.prometheus_rules`) or writes it to FILE. Each rule's ``runbook_url`` is the
service's own runbook page, ``<service URL>/runbooks/<AlertName>`` (:mod:`monitor.api.runbooks`):
the service URL is ``--service-url``, else the config's ``server.public_base_url``, else
``http://<server.host>:<server.port>`` of the config (the defaults without ``--config``).
``--runbook-base`` points the links at any other place with a page per alert (a wiki:
``<URL>/<AlertName>``). ``--window-period`` (how often a model's windows close) with
``--for-windows N`` sets the ``for:`` of the alerts on detector verdicts to N windows,
without editing :mod:`alerts.prometheus_rules`. A FILE that cannot be written, a bad
duration or URL prints one ``error:`` line and exits with 2; a bad config lists its problems
and exits with 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from alerts.prometheus_rules import DRIFT_FOR, alerts, render, runbook_base, windows_for
from monitor.cli.config import load_or_exit
from monitor.settings import ServerConfig

_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")
# A service bound to every interface is reached on this host at the loopback address.
_WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``rules export`` on the ``monitor`` parser."""
    rules = commands.add_parser("rules", help="Prometheus alerting rules for the exported metrics")
    sub = rules.add_subparsers(dest="rules_command", required=True)
    export = sub.add_parser("export", help="print the alerting rules as a Prometheus rules file (YAML)")
    export.add_argument("--output", "-o", metavar="FILE", help="write the rules to FILE instead of standard output")
    export.add_argument(
        "--config",
        metavar="FILE",
        help="the service's config: its server.public_base_url, else server.host and server.port, is the service "
        "URL of the runbook links (default: the default config, http://127.0.0.1:8000)",
    )
    links = export.add_mutually_exclusive_group()
    links.add_argument(
        "--service-url",
        metavar="URL",
        help="the service as the people opening the links reach it (https://monitor.example.com): runbook_url = "
        "URL/runbooks/<alert>, served by the service (default: from --config)",
    )
    links.add_argument(
        "--runbook-base",
        metavar="URL",
        help="another place with one runbook page per alert (a wiki): runbook_url = URL/<alert>",
    )
    export.add_argument(
        "--window-period",
        metavar="DURATION",
        help="how often a model's windows close, as a Prometheus duration (5m); with --for-windows",
    )
    export.add_argument(
        "--for-windows",
        type=int,
        metavar="N",
        help="fire the drift, quality, latency and performance alerts after N windows in breach: for: = N x "
        f"--window-period (default: the shipped for:, e.g. {DRIFT_FOR} for drift)",
    )
    export.set_defaults(func=cmd_export)


def service_url(server: ServerConfig) -> str:
    """Where the service of ``server`` is reached: its public address, else its bind address."""
    if server.public_base_url:
        return server.public_base_url
    host = _WILDCARD_HOSTS.get(server.host, server.host)
    return f"http://{f'[{host}]' if ':' in host else host}:{server.port}"


def _runbook_base(args: argparse.Namespace) -> str:
    if args.runbook_base is not None:
        url, option = args.runbook_base, "--runbook-base"
    elif args.service_url is not None:
        url, option = args.service_url, "--service-url"
    else:  # a config's server.public_base_url is checked by the config's schema
        return runbook_base(service_url(load_or_exit(args.config).server))
    if not _URL.fullmatch(url):
        raise ValueError(f"{option} must be an http(s) URL without query or fragment, got {url!r}")
    return url if option == "--runbook-base" else runbook_base(url)


def cmd_export(args: argparse.Namespace) -> int:
    result_for = None
    if (args.window_period is None) != (args.for_windows is None):
        print("error: give --window-period and --for-windows together", file=sys.stderr)
        return 2
    try:
        if args.window_period is not None:
            result_for = windows_for(args.window_period, args.for_windows)
        base = _runbook_base(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render(base, result_for)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    # The confirmation goes to stderr so that stdout stays empty when writing a file.
    print(f"{path}: {len(alerts())} alerting rules written", file=sys.stderr)
    return 0
