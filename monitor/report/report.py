"""The self-contained HTML report: one file, no script, no request, that opens from disk.

It shows the model page (heatmap and charts over windows) and, per feature, its
statistics over windows with the distributions of its latest window and of the window
where it moved most; a heatmap cell links to its feature's section.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detectors.evaluation import Evaluation
from detectors.performance import PerformanceResult
from monitor.detection import evaluation_rows, performance_rows
from monitor.report.links import Links
from monitor.report.pages import document, feature_sections, model_sections
from monitor.report.svg import esc
from monitor.report.view import ModelView, view_from_rows
from monitor.store.result_sink import histogram_rows


@dataclass(frozen=True)
class ReportLinks(Links):
    """Links inside the report: every feature to its section, everything else to the top."""

    features: tuple[str, ...] = field(default=())

    def overview(self) -> str:
        return "#top"

    def model(self, model: str, windows: int | None = None) -> str:
        return "#top"

    def feature(self, model: str, feature: str, window: int | None = None, segment: str = "") -> str:
        return f"#feature-{self.features.index(feature)}" if feature in self.features else "#top"

    def alerts(self, model: str | None = None) -> str:
        return "#top"


def report_html(view: ModelView, *, source: str = "") -> str:
    """The whole report of ``view`` (``source`` says where its data came from)."""
    links = ReportLinks(features=tuple(view.features))
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f'<h1 id="top">Drift report: <span class="model-name">{esc(view.model)}</span></h1>'
        f'<p class="muted">Generated {generated}{" from " + esc(source) if source else ""}.</p>',
        model_sections(view, links),
    ]
    if view.features:
        index = "".join(f'<li><a href="{esc(links.feature(view.model, f))}">{esc(f)}</a></li>' for f in view.features)
        parts.append(f"<h2>Features</h2><ul>{index}</ul>")
    for number, feature in enumerate(view.features):
        shown = _windows_to_show(view, feature)
        windows = "".join(
            f"<h2>{esc(feature)}, window {seq}{' (latest)' if i == 0 else ' (largest effect)'}</h2>"
            + feature_sections(view, feature, seq, links)
            for i, seq in enumerate(shown)
        )
        parts.append(
            f'<section id="feature-{number}" class="feature"><h2>Feature <span class="feature-name">'
            f'{esc(feature)}</span></h2>{windows}<p><a href="#top">&uarr; top</a></p></section>'
        )
    return document(f"Drift report - {view.model}", "".join(parts), None)


def _windows_to_show(view: ModelView, feature: str) -> list[int]:
    """The latest window, then the one with the largest effect / threshold when another."""
    latest = view.latest
    if latest is None:
        return []
    scored = [(c.ratio, s) for (f, s), c in view.cells.items() if f == feature and c.ratio is not None]
    worst = max(scored)[1] if scored else latest.seq
    return [latest.seq] if worst == latest.seq else [latest.seq, worst]


def view_from_results(
    model: str, evaluations: Sequence[Evaluation], performance: Sequence[PerformanceResult] = ()
) -> ModelView:
    """The view of results in hand (a replay's), through the same rows the store keeps."""
    rows = [row for e in evaluations for row in evaluation_rows(model, e)]
    version = evaluations[0].reference_version if evaluations else ""
    rows += [row for p in performance for row in performance_rows(model, p, version)]
    drawn = [row for e in evaluations for row in histogram_rows(model, e)]
    return view_from_rows(model, rows, drawn)


def write_report(path: Path, html: str) -> int:
    """Write the report (UTF-8); returns its size in bytes."""
    data = html.encode("utf-8")
    path.write_bytes(data)
    return len(data)
