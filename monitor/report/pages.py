"""The HTML of each view: models overview, model page (heatmap and charts), feature page
(distributions and statistics over windows), alerts page. Pages are complete documents
with inline CSS and no script; the links between them come from a :class:`Links`, so the
same views serve the web page (URLs carrying model, feature and window) and the report
(anchors inside one file)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.report.links import Links
from monitor.report.svg import distribution, esc, heatmap, line_chart, num
from monitor.report.view import Cell, ModelView

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:baseline}
header a{color:#cfd8dc;text-decoration:none}header strong{font-size:16px}
main{padding:12px 16px}h1{font-size:20px;margin:8px 0}h2{font-size:16px;margin:18px 0 6px}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#eceff1}td.num{text-align:right;font-variant-numeric:tabular-nums}
.drift,.breached,.firing{color:#b2182b;font-weight:600}.ok{color:#2e7d32}.muted{color:#777}
svg{background:#fff;border:1px solid #e0e0e0;margin:4px 8px 4px 0}svg text{font-size:11px;fill:#333}
svg text.title{font-size:12px;font-weight:600}.charts{display:flex;flex-wrap:wrap}
nav.windows a{margin-right:10px}table.segments a{color:inherit}form{background:#fff;padding:12px;border:1px solid #ddd;max-width:420px}
"""


def when(epoch: float | None) -> str:
    """An epoch-seconds time as UTC text."""
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def document(title: str, body: str, links: Links | None, *, signed_in: bool = False) -> str:
    """A whole HTML page: the header with the site's links (none in a report), then ``body``."""
    nav = ""
    if links is not None:
        nav = (f'<a href="{esc(links.overview())}">Models</a><a href="{esc(links.alerts())}">Alerts</a>'
               + (f'<a href="{esc(links.root)}/logout">Sign out</a>' if signed_in else ""))  # fmt: skip
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        # No icon to fetch: browsers ask for /favicon.ico otherwise (a 404, and a request from a report).
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><strong>Model monitor</strong>{nav}</header><main>{body}</main></body></html>"
    )


def table(head: Sequence[str], rows: Sequence[Sequence[str]], *, cls: str = "") -> str:
    """A table of cells already HTML (escape values with :func:`esc`)."""
    top = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{top}</tr></thead><tbody>{body}</tbody></table>'


def overview_page(models: Sequence[Mapping[str, Any]], links: Links, *, signed_in: bool = False) -> str:
    """One row per model: ``name``, ``reference_version``, ``records_last_hour``, ``drifted``
    (features of the latest window), ``latest_window``, ``firing`` (alerts) and ``breaches``
    (data-quality checks breached in the latest window)."""
    rows = []
    for m in models:
        drifted = ", ".join(esc(f) for f in m["drifted"]) or '<span class="ok">none</span>'
        breaches = ", ".join(esc(b) for b in m["breaches"]) or '<span class="ok">none</span>'
        firing = m["firing"]
        rows.append([
            f'<a class="model" href="{esc(links.model(m["name"]))}">{esc(m["name"])}</a>',
            esc(m["reference_version"] or "none"),
            f'<span class="num">{m["records_last_hour"]}</span>',
            esc(m["latest_window"] if m["latest_window"] is not None else "-"),
            f'<span class="drift">{drifted}</span>' if m["drifted"] else drifted,
            f'<a class="firing" href="{esc(links.alerts(m["name"]))}">{firing}</a>' if firing else "0",
            f'<span class="breached">{breaches}</span>' if m["breaches"] else breaches,
        ])  # fmt: skip
    head = ["model", "reference", "records, last hour", "latest window", "drifted features", "alerts firing",
            "data-quality breaches"]  # fmt: skip
    body = "<h1>Models</h1>" + (table(head, rows, cls="models") if rows else "<p>No models configured.</p>")
    return document("Models - model monitor", body, links, signed_in=signed_in)


def model_sections(view: ModelView, links: Links) -> str:
    """The model page's body: heatmap, then dataset drift, prediction drift, latency and
    performance over windows."""
    if not view.windows:
        return '<p class="muted">No window has been evaluated yet.</p>'
    latest = view.latest
    assert latest is not None
    heat = heatmap(view, lambda feature, seq: links.feature(view.model, feature, seq))
    share = {"drifted share": [(w.seq, w.share) for w in view.windows]}
    prediction = {"prediction drift": [(seq, c.score) for seq, c in sorted(view.prediction.items())]}
    pred_threshold = next((c.threshold for c in view.prediction.values() if c.threshold is not None), None)
    latency = {q: [(w.seq, w.latency.get(q)) for w in view.windows] for q in ("p50", "p95", "p99")}
    slo = next((w.latency_slo for w in reversed(view.windows) if w.latency_slo is not None), None)
    charts = [
        line_chart(share, title="Dataset drift: share of features drifted", threshold=latest.share_threshold),
        line_chart(prediction, title="Prediction drift (effect)", threshold=pred_threshold),
        line_chart(latency, title="Latency (ms)", threshold=slo),
    ]
    for metric, points in view.performance.items():
        reference = next((r for _, _, r in points if r is not None), None)
        charts.append(line_chart({metric: [(s, v) for s, v, _ in points]}, title=f"Performance: {metric}",
                                 reference=reference))  # fmt: skip
    drifted = ", ".join(
        f'<a href="{esc(links.feature(view.model, f, latest.seq))}">{esc(f)}</a>' for f in latest.drifted
    )
    estimated = estimated_charts(view)
    return (
        f"<p>Windows {view.windows[0].seq}-{latest.seq} ({len(view.windows)}). Latest window {latest.seq}: "
        f"{latest.n if latest.n is not None else '-'} records, ended {esc(when(latest.end))}, "
        f"drifted: {drifted or 'none'}.</p>"
        '<h2>Drift by feature and window</h2><p class="muted">Colour: effect / its threshold (blue: none, '
        "orange: at the threshold, red: three times it); outlined and dotted: drifted. Click a cell.</p>"
        f'<div class="heatmap-box">{heat}</div><h2>Over windows</h2><div class="charts">{"".join(charts)}</div>'
        + (
            '<h2>Estimated performance beside realized</h2><p class="muted">Estimated from the model\'s '
            "confidence before labels come (shaded: its band; dotted: the alert threshold), and realized once "
            f'labels came, by the end time of their windows (UTC).</p><div class="charts">{estimated}</div>'
            if estimated else ""
        )
    )  # fmt: skip


def _clock(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%m-%d %H:%M")


def estimated_charts(view: ModelView) -> str:
    """Per metric estimated before labels came: the estimate with its band, and the realized
    value of the same metric from the labels' windows once they came."""
    charts = []
    for metric, points in view.estimated.items():
        lines = view.estimated_lines.get(metric, {})
        # A multiclass estimate's precision, recall and F1 are macro averages, named so when realized.
        realized = view.realized.get(metric) or view.realized.get(f"{metric}_macro", [])
        series = {"estimated": [(t, v) for t, v, _, _ in points], "realized": realized}
        charts.append(line_chart(series, title=f"Estimated vs realized: {metric}", band=[(t, lo, hi) for t, _, lo, hi in points],
                                 reference=lines.get("reference"), threshold=lines.get("threshold"), x_label=_clock,
                                 from_zero=False))  # fmt: skip
    return "".join(charts)


def model_page(view: ModelView, links: Links, *, signed_in: bool = False) -> str:
    title = f'<h1>Model <span class="model-name">{esc(view.model)}</span></h1>'
    nav = (f'<p><a href="{esc(links.alerts(view.model))}">Alerts of this model</a> '
           f'<a href="{esc(links.segments(view.model))}">Segments</a> '
           f'<a href="{esc(links.versions(view.model))}">Versions</a></p>')  # fmt: skip
    return document(f"{view.model} - model monitor", title + nav + model_sections(view, links), links,
                    signed_in=signed_in)  # fmt: skip


def cell_table(cell: Cell | None) -> str:
    if cell is None:
        return '<p class="muted">No result for this feature in this window.</p>'
    if cell.insufficient:
        return '<p class="muted">Too few observations in this window to test.</p>'
    verdict = '<span class="drift">DRIFT</span>' if cell.drift else '<span class="ok">no drift</span>'
    rows = [
        ["test", esc(cell.test), f'<span class="statistic">{num(cell.statistic, 4)}</span>'],
        ["p-value", "", num(cell.pvalue, 3)],
        ["p-value adjusted for the features tested", "", num(cell.adjusted_pvalue, 3)],
        ["effect", esc(cell.effect), f'<span class="effect">{num(cell.score, 4)}</span>'],
        ["threshold (min effect)", "", num(cell.threshold, 4)],
        ["verdict", "", verdict],
    ]
    return table(["", "method", "value"], rows, cls="stats")


def feature_sections(view: ModelView, feature: str, seq: int, links: Links) -> str:
    """A feature's distributions in window ``seq``, its statistics over windows and its
    data-quality rates."""
    cell = view.cells.get((feature, seq))
    data = view.histograms.get((feature, seq))
    picture = distribution(data) if data else '<p class="muted">No histogram stored for this window.</p>'
    points = sorted((s, c) for (f, s), c in view.cells.items() if f == feature)
    threshold = next((c.threshold for _, c in reversed(points) if c.threshold is not None), None)
    effect_name = next((c.effect for _, c in reversed(points) if c.effect), "effect")
    charts = [
        line_chart({effect_name: [(s, c.score) for s, c in points]}, title=f"Effect ({effect_name})",
                   threshold=threshold, marker=seq),
        line_chart({"adjusted p-value": [(s, c.adjusted_pvalue) for s, c in points]},
                   title="Adjusted p-value", marker=seq),
        line_chart({"statistic": [(s, c.statistic) for s, c in points]}, title="Test statistic", marker=seq),
    ]  # fmt: skip
    rates: dict[str, list[tuple[float, float | None]]] = {}
    for (f, s), found in sorted(view.quality.items()):
        if f == feature:
            for name, rate, _, _ in found:
                rates.setdefault(name, []).append((s, rate))
    if rates:
        charts.append(line_chart(rates, title="Data-quality rates", marker=seq))
    checks = view.quality.get((feature, seq), [])
    quality = table(
        ["check", "rate", "threshold", ""],
        [[esc(name), num(rate, 4), num(limit, 4),
          '<span class="breached">breached</span>' if breached else '<span class="ok">ok</span>']
         for name, rate, limit, breached in checks],
        cls="quality",
    ) if checks else '<p class="muted">No data-quality checks stored for this window.</p>'  # fmt: skip
    return (
        f"<h2>Window {seq}: reference vs window</h2>{cell_table(cell)}{picture}"
        f'<h2>Over windows</h2><div class="charts">{"".join(charts)}</div>'
        f"<h2>Data quality in window {seq}</h2>{quality}"
    )


def feature_page(view: ModelView, feature: str, seq: int, links: Links, *, signed_in: bool = False) -> str:
    """A feature in window ``seq``: of the whole population, or of the slice ``view.segment``
    (named in the title; its windows are numbered apart, so the steps stay in the slice)."""
    seqs, segment = [w.seq for w in view.windows], view.segment
    index = seqs.index(seq) if seq in seqs else -1
    steps = []
    if index > 0:
        steps.append(f'<a rel="prev" href="{esc(links.feature(view.model, feature, seqs[index - 1], segment))}">'
                     f"&larr; window {seqs[index - 1]}</a>")  # fmt: skip
    if 0 <= index < len(seqs) - 1:
        steps.append(f'<a rel="next" href="{esc(links.feature(view.model, feature, seqs[index + 1], segment))}">'
                     f"window {seqs[index + 1]} &rarr;</a>")  # fmt: skip
    window = view.window(seq)
    where = (f', segment <a class="segment" href="{esc(links.segments(view.model))}">{esc(segment)}</a>'
             if segment else "")  # fmt: skip
    head = (
        f'<h1>Feature <span class="feature-name">{esc(feature)}</span> of '
        f'<a href="{esc(links.model(view.model))}">{esc(view.model)}</a>{where}, window <span class="window">{seq}</span></h1>'
        f'<p class="muted">{esc(when(window.start if window else None))} to {esc(when(window.end if window else None))}'
        f'</p><nav class="windows">{"".join(steps)}</nav>'
    )
    body = head + feature_sections(view, feature, seq, links)
    title = f"{feature} - {view.model}" + (f" {segment}" if segment else "")
    return document(f"{title} - model monitor", body, links, signed_in=signed_in)


def alerts_page(
    alerts: Sequence[Mapping[str, Any]],
    transitions: Mapping[str, Sequence[Mapping[str, Any]]],
    deliveries: Sequence[Mapping[str, Any]],
    links: Links,
    *,
    model: str | None = None,
    signed_in: bool = False,
) -> str:
    """Firing alerts first, then the recent ones, each with its transitions; then deliveries."""
    ordered = sorted(alerts, key=lambda a: (a["state"] != "firing", -a["updated_at"]))
    rows = []
    for a in ordered:
        feature = a["feature"] or ""
        href = _alert_href(a, links)
        where = esc(a["model"]) if href is None else f'<a href="{esc(href)}">{esc(a["model"])} / {esc(feature)}</a>'
        steps = " &rarr; ".join(
            f"{esc(t.get('to_state', t.get('state', '')))} ({esc(when(t.get('at', t.get('created_at'))))})"
            for t in transitions.get(a["alert_id"], [])
        )
        state = f'<span class="{esc(a["state"])}">{esc(a["state"])}</span>'
        rows.append([esc(a["rule"]), esc(a["severity"]), state, where, esc(a.get("window_seq") or "-"),
                     num(a.get("value"), 4), esc(when(a["updated_at"])), steps])  # fmt: skip
    head = ["rule", "severity", "state", "model / feature", "window", "value", "updated", "transitions"]
    delivered = [[esc(d["id"]), esc(d["webhook"]), esc(d["alert_id"]), esc(d["state"]), esc(d["attempts"]),
                  esc(d.get("last_status") or "-"), esc(when(d["created_at"])), esc(when(d.get("delivered_at")))]
                 for d in deliveries]  # fmt: skip
    scope = f" of {esc(model)}" if model else ""
    body = (
        f"<h1>Alerts{scope}</h1>" + (table(head, rows, cls="alerts") if rows else "<p>No alerts.</p>")
        + "<h2>Webhook deliveries</h2>"
        + (table(["id", "webhook", "alert", "state", "attempts", "last status", "created", "delivered"], delivered)
           if delivered else "<p>No deliveries.</p>")
    )  # fmt: skip
    return document("Alerts - model monitor", body, links, signed_in=signed_in)


def _alert_href(alert: Mapping[str, Any], links: Links) -> str | None:
    """Where an alert's key leads: its feature's page in its window, of its slice for a
    segment's alert ("f0@region:eu"); a version's alert to the versions view."""
    detail, model = alert.get("detail") or {}, alert["model"]
    if detail.get("model_version"):
        return links.versions(model)
    if detail.get("segment"):
        feature = detail.get("feature") or ""
        return (
            links.feature(model, feature, alert.get("window_seq"), detail["segment"])
            if feature
            else links.segments(model)
        )
    return links.feature(model, alert["feature"], alert.get("window_seq")) if alert["feature"] else None


def login_page(links: Links, *, next_url: str, error: str = "") -> str:
    """The sign-in form: a token with the read scope, kept in an HttpOnly cookie."""
    problem = f'<p class="drift">{esc(error)}</p>' if error else ""
    body = (
        f'<h1>Sign in</h1>{problem}<form method="post" action="{esc(links.root)}/login">'
        f'<input type="hidden" name="next" value="{esc(next_url)}">'
        "<p><label>API token with the <code>read</code> scope<br>"
        '<input type="password" name="token" autocomplete="current-password" size="40" required></label></p>'
        '<p><button type="submit">Sign in</button></p></form>'
    )
    return document("Sign in - model monitor", body, None)
