"""Issue 17, item 9: the runbook links of the Prometheus rules open. The service serves a
page per alert (``GET /runbooks/<alert>``, from the packaged ``monitor/data/runbooks.md``)
and ``monitor rules export`` points every ``runbook_url`` at it, by default at the service
its config describes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from support import PYTHON, ROOT, ServiceProcess, config

from alerts.prometheus_rules import RUNBOOK_BASE, alerts, render
from monitor.api.runbooks import blocks, inline, parse, runbooks

TOKENS = {"tokens": [{"name": "oncall", "token": "read-secret", "scopes": ["read"]}]}


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    command = [PYTHON, "-m", "monitor.cli", "rules", "export", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


def _runbook_urls(rules_yaml: str) -> dict[str, str]:
    rules = yaml.safe_load(rules_yaml)["groups"][0]["rules"]
    return {rule["alert"]: rule["annotations"]["runbook_url"] for rule in rules}


def test_every_runbook_url_of_the_exported_rules_opens_on_the_served_service(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, config(tmp_path, auth=TOKENS)) as service:
        # Precondition: auth is on, so the runbooks opening below is not "everything is open".
        assert httpx.get(f"{service.url}/v1/models", timeout=30).status_code == 401
        exported = _export("--config", str(service.config_path))
        assert exported.returncode == 0, exported.stderr
        urls = _runbook_urls(exported.stdout)
        assert list(urls) == [alert.name for alert in alerts()] and len(urls) == 15
        for name, url in urls.items():
            assert url == f"{service.url}/runbooks/{name}"  # the service of the config, no placeholder
            page = httpx.get(url, timeout=30)  # no token: a browser opening the link sends none
            assert page.status_code == 200, (name, page.text)
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert f'<h1 id="{name}">Runbook: {name}</h1>' in page.text
            assert page.text.count("<p>") >= 2, name  # the link back, and the runbook's own text
        # All on one page, each section anchored by its alert's name, in rule order.
        everything = httpx.get(f"{service.url}/runbooks", timeout=30).text
        anchors = re.findall(r'<section id="([^"]+)">', everything)
        assert anchors == list(urls)
        # The name is matched ignoring case (the old README anchors were lower case).
        lowered = httpx.get(f"{service.url}/runbooks/modelfeaturedrift", timeout=30)
        assert lowered.status_code == 200 and '<h1 id="ModelFeatureDrift">' in lowered.text
        unknown = httpx.get(f"{service.url}/runbooks/NoSuchAlert", timeout=30)
        assert unknown.status_code == 404
        assert unknown.json()["detail"].startswith("no runbook for alert 'NoSuchAlert'; runbooks: ModelFeatureDrift, ")


def test_every_alert_has_a_runbook_section_and_every_section_an_alert() -> None:
    assert list(runbooks().sections) == [alert.name for alert in alerts()]
    for name, lines in runbooks().sections.items():
        assert sum(len(line) for line in lines) > 100, f"{name}: the runbook says next to nothing"


def test_the_shipped_rules_link_the_service_at_its_default_address() -> None:
    assert RUNBOOK_BASE == "http://127.0.0.1:8000/runbooks"
    assert "OWNER" not in render() and "README.md#" not in render()


@pytest.mark.parametrize(
    ("args", "server", "first"),
    [
        ([], None, "http://127.0.0.1:8000/runbooks/ModelFeatureDrift"),
        (["--service-url", "https://monitor.example.com/ml/"], None, "https://monitor.example.com/ml/runbooks/ModelFeatureDrift"),
        (["--runbook-base", "https://wiki.example/ml/runbooks"], None, "https://wiki.example/ml/runbooks/ModelFeatureDrift"),
        (["--config", "CONFIG"], {"host": "0.0.0.0", "port": 9100}, "http://127.0.0.1:9100/runbooks/ModelFeatureDrift"),
        (["--config", "CONFIG"], {"host": "::", "port": 9100}, "http://[::1]:9100/runbooks/ModelFeatureDrift"),
        (
            ["--config", "CONFIG"],
            {"port": 9100, "public_base_url": "https://monitor.example.com"},
            "https://monitor.example.com/runbooks/ModelFeatureDrift",
        ),
        # An explicit URL wins over the config's.
        (["--config", "CONFIG", "--service-url", "http://m:1"], {"port": 9100}, "http://m:1/runbooks/ModelFeatureDrift"),
    ],
)  # fmt: skip
def test_where_the_runbook_links_point(
    tmp_path: Path, args: list[str], server: dict[str, object] | None, first: str
) -> None:
    if server is not None:
        path = tmp_path / "monitor.yaml"
        path.write_text(yaml.safe_dump({"server": server, "storage": {"url": f"sqlite:///{tmp_path / 'm.db'}"}}))
        args = [str(path) if a == "CONFIG" else a for a in args]
    exported = _export(*args)
    assert exported.returncode == 0, exported.stderr
    urls = list(_runbook_urls(exported.stdout).values())
    assert urls[0] == first
    assert all(url == first.removesuffix("ModelFeatureDrift") + a.name for url, a in zip(urls, alerts(), strict=True))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--service-url", "ftp://monitor"], "error: --service-url must be an http(s) URL without query or fragment, got 'ftp://monitor'\n"),
        (["--runbook-base", "https://wiki/x#runbook-"], "error: --runbook-base must be an http(s) URL without query or fragment, got 'https://wiki/x#runbook-'\n"),
        (["--config", "/nonexistent/monitor.yaml"], "/nonexistent/monitor.yaml: invalid configuration (1 problem(s))\n  cannot read file: No such file or directory\n"),
    ],
)  # fmt: skip
def test_a_bad_link_option_is_one_clear_error(args: list[str], message: str) -> None:
    exported = _export(*args)
    assert (exported.returncode, exported.stdout, exported.stderr) == (2, "", message)


def test_the_markdown_subset_renders_escaped() -> None:
    assert inline("a `<b>` and **c & d** <i>") == "a <code>&lt;b&gt;</code> and <strong>c &amp; d</strong> &lt;i&gt;"
    lines = ["One", "two `x`.", "", "- first", "  goes on", "- second", "After."]
    assert blocks(lines) == (
        "<p>One two <code>x</code>.</p>\n<ul><li>first goes on</li><li>second</li></ul>\n<p>After.</p>"
    )
    book = parse("# Title\nIntro.\n\n## A\nText of A.\n## B\nText of B.\n")
    assert (book.title, book.preamble, book.sections) == (
        "Title",
        ["Intro.", ""],
        {"A": ["Text of A."], "B": ["Text of B."]},
    )
    assert (book.find("a"), book.find("C")) == ("A", None)
