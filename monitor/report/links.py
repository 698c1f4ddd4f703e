"""Where the web page's views live: URLs carrying the model, feature and window, so a page
can be pasted into an incident channel, and linked from alerts and webhook payloads."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

UI_ROOT = "/ui"


@dataclass(frozen=True)
class Links:
    """URLs of the web page; each carries the model, feature and window it shows."""

    root: str = UI_ROOT

    def overview(self) -> str:
        return self.root

    def model(self, model: str, windows: int | None = None) -> str:
        query = {"model": model, **({"windows": windows} if windows else {})}
        return f"{self.root}/model?{urlencode(query)}"

    def feature(self, model: str, feature: str, window: int | None = None, segment: str = "") -> str:
        """A feature in a window of the whole population, or of the slice ``segment`` ("region:eu")."""
        query = {"model": model, "feature": feature, **({"window": window} if window is not None else {}),
                 **({"segment": segment} if segment else {})}  # fmt: skip
        return f"{self.root}/feature?{urlencode(query)}"

    def segments(self, model: str) -> str:
        return f"{self.root}/segments?{urlencode({'model': model})}"

    def versions(self, model: str) -> str:
        return f"{self.root}/versions?{urlencode({'model': model})}"

    def alerts(self, model: str | None = None) -> str:
        return f"{self.root}/alerts" + (f"?{urlencode({'model': model})}" if model else "")


def page_url(base: str, model: str, feature: str = "", window: int | None = None) -> str:
    """The absolute URL (``base``: the service's public address) of the page showing a
    feature in a window, or the model page when the alert is not about one feature."""
    links = Links(base.rstrip("/") + UI_ROOT)
    return links.feature(model, feature, window) if feature else links.model(model)
