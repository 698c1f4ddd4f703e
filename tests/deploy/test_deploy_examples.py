"""The deployment examples (Dockerfile, Kubernetes manifest, Prometheus scrape configs)
checked statically against the real service: no Docker engine or Kubernetes runs here, so
every name, port, path, flag and config key they use is checked against the code instead.

promtool is run for real (Debian package ``prometheus``, which ``./dev test`` installs); a
missing promtool fails the test rather than skipping it, as in tests/alerts.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from support import client, metric, wait_for

from monitor.api.app import create_app
from monitor.cli import build_parser
from monitor.cli import main as monitor_main
from monitor.cli.serve import cmd_serve
from monitor.settings import ServerConfig, Settings, settings_from_mapping

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MANIFEST = ROOT / "deploy" / "kubernetes" / "sklearn-iris-monitor.yaml"
SCRAPE = ROOT / "deploy" / "prometheus" / "scrape.yml"
SCRAPE_KUBERNETES = ROOT / "deploy" / "prometheus" / "scrape-kubernetes.yml"
KSERVE_REQUEST = "org.kubeflow.serving.inference.request"
KSERVE_RESPONSE = "org.kubeflow.serving.inference.response"


# --- reading the examples -----------------------------------------------------------------


def documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc is not None]


def one(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in documents() if d["kind"] == kind]
    return doc


def predictor() -> dict[str, Any]:
    return one("InferenceService")["spec"]["predictor"]


def monitor_container() -> dict[str, Any]:
    (container,) = [c for c in predictor()["containers"] if c["name"] == "monitor"]
    return container


def monitor_config() -> dict[str, Any]:
    """The monitor's config as the ConfigMap holds it."""
    return yaml.safe_load(one("ConfigMap")["data"]["config.yaml"])


def container_port() -> int:
    (port,) = monitor_container()["ports"]
    return port["containerPort"]


def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins for the Secret's values, so that config validation can resolve token_env."""
    for token in monitor_config()["auth"]["tokens"]:
        monkeypatch.setenv(token["token_env"], "test-token-" + token["name"])


def service_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The ConfigMap's config with the SQLite file moved into tmp_path."""
    token_env(monkeypatch)
    data = copy.deepcopy(monitor_config())
    data["storage"]["url"] = f"sqlite:///{tmp_path / 'monitor.db'}"
    return settings_from_mapping(data, "configmap")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped.removesuffix("\\").strip() + " "
        if stripped.endswith("\\"):
            continue
        word, _, rest = pending.strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def docker_args(name: str) -> list[str]:
    (rest,) = [rest for word, rest in dockerfile() if word == name]
    return rest


def docker_env() -> dict[str, str]:
    pairs = [item for word, rest in dockerfile() if word == "ENV" for item in shlex.split(rest)]
    return dict(item.split("=", 1) for item in pairs)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: this test runs the real promtool. `./dev test` installs it "
            "(Debian package prometheus); by hand: apt-get install --no-install-recommends prometheus",
            pytrace=False,
        )
    return path


def promtool_check(path: Path) -> None:
    result = subprocess.run([promtool(), "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {path} is valid prometheus config file syntax" in result.stdout


# --- the Kubernetes manifest ----------------------------------------------------------------


def test_every_manifest_document_is_a_named_kubernetes_object() -> None:
    docs = documents()
    assert [(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("v1", "ConfigMap", "sklearn-iris-monitor"),
        ("v1", "PersistentVolumeClaim", "sklearn-iris-monitor-data"),
        ("serving.kserve.io/v1beta1", "InferenceService", "sklearn-iris"),
    ]
    # the sidecar needs ports and HTTP probes, which Knative allows on one container only
    assert one("InferenceService")["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert predictor()["model"]["modelFormat"] == {"name": "sklearn"}
    # KServe treats a container named kserve-container as the model server itself
    assert [c["name"] for c in predictor()["containers"]] == ["monitor"]


def test_the_logger_posts_to_the_sidecars_cloudevents_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = predictor()["logger"]
    assert logger["mode"] == "all"  # requests (inputs) and responses (predictions)
    url = urlsplit(logger["url"])
    assert (url.scheme, url.hostname, url.port, url.path) == ("http", "localhost", container_port(), "/v1/cloudevents")
    settings = service_settings(tmp_path, monkeypatch)
    assert settings.server.port == container_port()
    with client(settings) as (http, _):
        routes = http.app.openapi()["paths"]  # the app's own route table, methods included
    assert "post" in routes[url.path]


def test_probes_and_metrics_are_real_routes_open_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = monitor_container()
    probes = {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes == {
        "readinessProbe": {"path": "/readyz", "port": "monitor"},
        "livenessProbe": {"path": "/healthz", "port": "monitor"},
    }
    assert [port["name"] for port in container["ports"]] == ["monitor"]
    annotations = predictor()["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(container_port()),
                           "prometheus.io/path": "/metrics"}  # fmt: skip
    with client(service_settings(tmp_path, monkeypatch)) as (http, _):
        # the kubelet and Prometheus send no token; auth is on for everything else
        assert http.get("/readyz").json() == {"status": "ready", "store": "ok"}
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/metrics").status_code == 200
        assert http.get("/v1/models").status_code == 401
        operator = {"authorization": "Bearer test-token-operator"}
        assert http.get("/v1/models", headers=operator).status_code == 200


def test_the_configmap_config_passes_check_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token_env(monkeypatch)
    path = tmp_path / "config.yaml"
    path.write_text(one("ConfigMap")["data"]["config.yaml"])
    assert monitor_main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: OK (1 model(s), 4 feature(s), storage sqlite:////var/lib/monitor/monitor.db)\n"
    )


def test_kserve_v1_events_of_the_inference_service_are_accepted_and_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = one("InferenceService")["metadata"]["name"]
    assert list(monitor_config()["models"]) == [name]  # KServe's events carry this name
    path = urlsplit(predictor()["logger"]["url"]).path

    def event(http: TestClient, kind: str, body: dict[str, Any]) -> httpx.Response:
        headers = {
            "ce-specversion": "1.0", "ce-id": "req-7", "ce-source": "http://localhost:9081/", "ce-type": kind,
            "ce-inferenceservicename": name, "content-type": "application/json",
        }  # fmt: skip
        return http.post(path, headers=headers, json=body)

    registry = CollectorRegistry()
    app = create_app(service_settings(tmp_path, monkeypatch), registry=registry)
    # The logger posts from inside the pod; anything else reaching the pod's port needs a token.
    with TestClient(app, client=("127.0.0.1", 40000)) as logger, TestClient(app, client=("10.1.2.3", 40000)) as other:
        assert event(other, KSERVE_REQUEST, {"instances": [[6.8, 2.8, 4.8, 1.4]]}).status_code == 401
        # what KServe's sklearn server receives and answers for one iris row
        assert event(logger, KSERVE_REQUEST, {"instances": [[6.8, 2.8, 4.8, 1.4]]}).json()["accepted"] == 1
        assert event(logger, KSERVE_RESPONSE, {"predictions": [1]}).json()["accepted"] == 1
        wait_for(lambda: metric(registry, "monitor_records_joined_total", model=name) == 1.0, 10, "the join")
        assert metric(registry, "monitor_records_accepted_total", model=name, source="cloudevents") == 2.0
        assert metric(registry, "monitor_records_rejected_total", model=name, source="cloudevents",
                      reason="wrong_type") == 0.0  # fmt: skip


def test_mounts_secret_and_volumes_line_up(monkeypatch: pytest.MonkeyPatch) -> None:
    container = monitor_container()
    args = build_parser().parse_args(container["args"])
    assert args.func is cmd_serve and args.host is None and args.port is None  # host and port come from the config
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in predictor()["volumes"]}
    config_file = PurePosixPath(args.config)
    assert str(config_file.parent) == mounts["monitor-config"]
    assert volumes["monitor-config"]["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    assert config_file.name in one("ConfigMap")["data"]
    # the SQLite file is on the claim, in the image's data volume
    database = PurePosixPath(monitor_config()["storage"]["url"].removeprefix("sqlite:///"))
    assert str(database.parent) == mounts["monitor-data"] == "/var/lib/monitor"
    assert json.loads(docker_args("VOLUME")) == [mounts["monitor-data"]]
    claim = volumes["monitor-data"]["persistentVolumeClaim"]["claimName"]
    assert claim == one("PersistentVolumeClaim")["metadata"]["name"]
    # one writer on a ReadWriteOnce claim: one replica, replaced not surged
    assert (predictor()["minReplicas"], predictor()["maxReplicas"]) == (1, 1)
    assert predictor()["deploymentStrategy"] == {"type": "Recreate"}
    # every token_env of the config is set from the Secret
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert {t["token_env"] for t in monitor_config()["auth"]["tokens"]} == set(env)
    assert env["MONITOR_OPERATOR_TOKEN"] == {"name": "sklearn-iris-monitor-token", "key": "token"}


# --- the Dockerfile -------------------------------------------------------------------------


def test_the_image_runs_a_real_monitor_command_as_the_manifests_user() -> None:
    assert docker_args("FROM") == "python:3.11-slim"
    argv = json.loads(docker_args("ENTRYPOINT")) + json.loads(docker_args("CMD"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] == "monitor" and scripts["monitor"] == "monitor.cli:main"
    args = build_parser().parse_args(argv[1:])
    assert args.func is cmd_serve and args.config == "/etc/monitor/config.yaml"
    # the Kubernetes container passes the same arguments to the same entrypoint
    assert monitor_container()["args"] == argv[1:] and "command" not in monitor_container()
    user = docker_args("USER")
    assert user == "10001"  # numeric, so runAsNonRoot can verify it
    assert monitor_container()["securityContext"]["runAsUser"] == int(user)
    assert predictor()["securityContext"]["fsGroup"] == int(user)
    (install,) = [shlex.split(rest) for word, rest in dockerfile() if word == "RUN" and "pip install" in rest]
    assert install[:3] == ["pip", "install", "/src[mlflow]"]  # the project with its MLflow client
    assert "mlflow" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_the_image_listens_on_all_interfaces_on_the_exposed_port(monkeypatch: pytest.MonkeyPatch) -> None:
    env = docker_env()
    assert env["MONITOR_SERVER__HOST"] == "0.0.0.0"
    assert int(docker_args("EXPOSE")) == ServerConfig().port == container_port() == 8000
    # the environment wins over a config that says loopback (the shipped example does)
    example = yaml.safe_load((ROOT / "monitor" / "example.yaml").read_text())
    assert example["server"]["host"] == "127.0.0.1"
    monkeypatch.setenv("MONITOR_SERVER__HOST", env["MONITOR_SERVER__HOST"])
    server = settings_from_mapping(example).server
    assert (server.host, server.port) == ("0.0.0.0", 8000)


def test_the_healthcheck_calls_the_real_health_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options, _, command = docker_args("HEALTHCHECK").partition(" CMD ")
    assert options.startswith("--interval=")
    argv = json.loads(command)
    (url,) = re.findall(r"'(http://[^']+)'", argv[-1])
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("127.0.0.1", int(docker_args("EXPOSE")), "/healthz")
    with client(service_settings(tmp_path, monkeypatch)) as (http, _):
        assert http.get(parts.path).status_code == 200


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)  # the matcher below has no exceptions

    def regex(pattern: str) -> re.Pattern[str]:
        # Docker's pattern syntax: * and ? stay within one path component, ** spans several.
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            else:
                out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
                i += 1
        return re.compile(out)

    regexes = [regex(p) for p in patterns]

    def ignored(path: str) -> bool:
        # A pattern matching a directory excludes everything under it.
        parts = path.split("/")
        return any(rx.fullmatch("/".join(parts[: i + 1])) for rx in regexes for i in range(len(parts)))

    sources = [src for word, rest in dockerfile() if word == "COPY" for src in shlex.split(rest)[:-1]]
    assert sources == ["pyproject.toml", "README.md", "monitor", "collectors", "detectors", "alerts",
                       "monitor/example.yaml"]  # fmt: skip
    # every package pip installs is copied in (a new top-level package must be added here)
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert {name.removesuffix("*") for name in packages["include"]} <= set(sources)
    needed = []
    for src in sources:
        path = ROOT / src
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        needed += [f.relative_to(ROOT).as_posix() for f in files if "__pycache__" not in f.parts]
    assert "monitor/store/migrations/env.py" in needed and "monitor/example.yaml" in needed
    assert [f for f in needed if ignored(f)] == []
    for unwanted in (
        ".venv/bin/python",
        "tests/support.py",
        "var/monitor.db",
        "monitor/__pycache__/cli.cpython-311.pyc",
    ):
        assert ignored(unwanted), unwanted


# --- Prometheus -----------------------------------------------------------------------------


def test_the_static_scrape_config_passes_promtool() -> None:
    promtool_check(SCRAPE)
    (job,) = yaml.safe_load(SCRAPE.read_text())["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    ((target,),) = [group["targets"] for group in job["static_configs"]]
    assert target.rsplit(":", 1)[1] == str(ServerConfig().port)


def relabel(labels: dict[str, str], configs: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus' keep and replace relabelling (anchored regexes, ``$n`` references);
    None when the target is dropped."""
    labels = dict(labels)
    for config in configs:
        value = config.get("separator", ";").join(labels.get(name, "") for name in config["source_labels"])
        match = re.fullmatch(config.get("regex", "(.*)"), value)
        action = config.get("action", "replace")
        if action == "keep":
            if match is None:
                return None
        elif action == "replace":
            if match is not None:
                replacement = re.sub(r"\$(\d+)", r"\\g<\1>", config.get("replacement", "$1"))
                labels[config["target_label"]] = match.expand(replacement)
        else:
            raise AssertionError(f"relabel action {action} is not simulated here")
    return labels


def test_the_kubernetes_scrape_job_finds_the_sidecar_from_its_annotations(tmp_path: Path) -> None:
    config = yaml.safe_load(SCRAPE_KUBERNETES.read_text())
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]

    # Prometheus names annotation labels with every non-alphanumeric character as "_".
    def pod(annotations: dict[str, str]) -> dict[str, str]:
        meta = {
            "__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in annotations.items()
        }
        return {"__address__": "10.1.2.3:8080", "__meta_kubernetes_namespace": "models",
                "__meta_kubernetes_pod_name": "sklearn-iris-predictor-7d9f", **meta}  # fmt: skip

    target = relabel(pod(predictor()["annotations"]), job["relabel_configs"])
    assert target is not None
    assert (target["__address__"], target["__metrics_path__"], target["namespace"], target["pod"]) == (
        f"10.1.2.3:{container_port()}", "/metrics", "models", "sklearn-iris-predictor-7d9f",
    )  # fmt: skip
    assert relabel(pod({}), job["relabel_configs"]) is None  # unannotated pods are not scraped

    # Debian's promtool has no Kubernetes discovery: check everything else with a static target.
    static = copy.deepcopy(config)
    del static["scrape_configs"][0]["kubernetes_sd_configs"]
    static["scrape_configs"][0]["static_configs"] = [{"targets": ["10.1.2.3:8080"]}]
    checked = tmp_path / "scrape-kubernetes-static.yml"
    checked.write_text(yaml.safe_dump(static))
    promtool_check(checked)
