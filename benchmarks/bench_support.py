"""What the Kafka benchmarks share. Import it before anything from the project:

* ``benchmarks/detectors.py`` has the name of the package it measures, so with this
  directory first on the import path ``import detectors`` would load it: the directory is
  taken off the path, and ``tests/`` put on it for the brokers' and servers' helpers;
* :data:`http_bench` is ``benchmarks/ingest_http.py`` as a module, for its 25-feature
  records and service config.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
for folder in (ROOT, ROOT / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


http_bench = _load("ingest_http")
