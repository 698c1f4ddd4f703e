"""The model monitor: settings, record schema, pipeline, storage, the app and the command.

As a library: ``monitor.compare(reference, current)`` compares two frames,
``monitor.profile(frame_or_path)`` builds a reference profile, and
``monitor.client.MonitorClient`` sends a model server's records to a running service.
Importing the package changes nothing global in the caller's process (environment,
thread pools, garbage collector): the service's entry points tune their own processes.
"""

from typing import Any

__all__ = ["Comparison", "Profile", "compare", "profile"]
_LAZY = {"compare": "monitor.comparison", "Comparison": "monitor.comparison", "profile": "monitor.profiling",
         "Profile": "monitor.profiling"}  # fmt: skip


def __getattr__(name: str) -> Any:
    # Loaded on first use: `import monitor` (and the service's own imports) stay light.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'monitor' has no attribute {name!r}")
