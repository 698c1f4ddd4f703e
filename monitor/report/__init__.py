"""Pictures of what the monitor found: the web page's views and the self-contained HTML report.

:mod:`.view` gathers a model's windows from result and histogram rows (from the store, or
from a replay's results); :mod:`.svg` draws them as inline SVG on the server; :mod:`.pages`
lays out the HTML of each page; :mod:`.report` writes the single-file report.

Why SVG drawn on the server, not a plotting library: the pages then need no JavaScript
at all, so nothing is fetched and nothing runs in the reader's browser (a strict Content
Security Policy holds), a report is one file that opens offline, and every value from
traffic goes through one escaping function. The charts needed (a heatmap, histograms,
bars, lines over windows) are a few hundred lines of code.
"""
