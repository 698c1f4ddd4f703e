# The monitor as a container image (deploy/README.md: build, run, Kubernetes).
#   docker build -t model-monitor:0.1.0 .
#   docker run -p 8000:8000 -v monitor-data:/var/lib/monitor model-monitor:0.1.0
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Sources only (.dockerignore keeps out tests, benchmarks, .venv, data); the installed package
# carries the migrations and YAML files as package data, so /src can go after the install.
# With the [mlflow] extra (the client, mlflow-skinny): a config may take its references from
# an MLflow registry (README "MLflow") without building another image.
COPY pyproject.toml README.md /src/
COPY monitor /src/monitor
COPY collectors /src/collectors
COPY detectors /src/detectors
COPY alerts /src/alerts
RUN pip install '/src[mlflow]' && rm -rf /src

# A fixed non-root uid, so that Kubernetes' runAsNonRoot can check it and fsGroup can match it.
RUN useradd --system --uid 10001 --home-dir /var/lib/monitor --shell /usr/sbin/nologin monitor \
    && mkdir -p /var/lib/monitor /etc/monitor \
    && chown monitor /var/lib/monitor

# A default config (the README's example models) so the image runs as is; mount your own over
# it. Its relative SQLite URL lands in the working directory, which is the data volume.
COPY monitor/example.yaml /etc/monitor/config.yaml
WORKDIR /var/lib/monitor
VOLUME ["/var/lib/monitor"]

# The config's server.host defaults to loopback, unreachable from outside a container: the
# environment overrides it (README, Configuration) whatever the mounted config says.
ENV MONITOR_SERVER__HOST=0.0.0.0
EXPOSE 8000

USER 10001
# /healthz on the default server.port; change both if your config moves the port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# `docker run IMAGE check-config /etc/monitor/config.yaml` runs another subcommand.
ENTRYPOINT ["monitor"]
CMD ["serve", "--config", "/etc/monitor/config.yaml"]
