"""How a comparison (criobe_verify/compare.py) reads: a table on stdout, a self-contained HTML
page; both list the same sections in the same order, findings first.

    print(text_table(comparison))
    Path("reports/compare.html").write_text(html_page(comparison))

    >>> cell(Timing("p50_s", 0.2, 0.3))
    '0.200 → 0.300 (×1.50)'
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from criobe_verify.answer_drift import AnswerChange
from criobe_verify.compare import LATENCY_NOT_COMPARED, Change, Comparison, Timing

CLIP = 110  # a finding's first line in the terminal; the page shows it whole


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def cell(t: Timing) -> str:
    ratio = "" if t.ratio is None else f" (×{t.ratio:.2f})"
    return f"{_s(t.before)} → {_s(t.after)}{ratio}"


def sections(c: Comparison) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every section, in the order both renderings show them."""

    def changes(items: Iterable[Change]) -> list[list[str]]:
        return [[x.check, x.kind, x.before, x.after, x.finding] for x in items]

    head = ["check", "kind", "before", "after", "finding now"]
    out = [
        ("Checks that passed before and do not now", head, changes(c.flips)),
        ("New checks", head, changes(c.new)),
        ("Checks gone", head, changes(c.gone)),
        ("Other outcome changes", head, changes(c.other_changes)),
    ]
    if c.drift is not None:
        out.append(("Configuration drift: findings", ["change"], [[d.line] for d in c.risky]))
        info = [[d.line] for d in c.drift if not d.risky]
        out.append(("Configuration drift: information", ["change"], info))
    if c.data is not None:
        out.append(("Data lost or changed", ["change"], [[d.line] for d in c.data_lost]))
        info = [[d.line] for d in c.data if not d.finding]
        out.append(("Data: information", ["change"], info))
    if c.answers is not None:
        head = ["function", "image", "element", "before", "after", "measure"]

        def rows(items: Iterable[AnswerChange]) -> list[list[str]]:
            return [[a.function, a.image, a.element, a.before, a.after, a.measure] for a in items]

        out.append(("Function answers changed", head, rows(c.answers_changed)))
        out.append(
            ("Function answers: information", head, rows(a for a in c.answers if not a.finding))
        )
    latency = [
        [fn, *_latency_cells(c, fn, ts)]
        for fn, ts in sorted([*c.latency.items(), *c.latency_not_compared.items()])
    ]
    out.append(
        (
            "Latency, seconds per call (before → after, ×after/before)",
            ["function", "image", "first call", "p50", "p95", "max"],
            latency,
        )
    )
    stages = [[wf, t.what, cell(t)] for wf, ts in c.stages.items() for t in ts]
    out.append(("E2E stages, seconds", ["workflow", "stage", "before → after"], stages))
    return out


def _latency_cells(c: Comparison, fn: str, timings: list[Timing]) -> list[str]:
    """The image size, then the figures with their ratio; figures timed on different image
    sizes side by side, said not compared.

    >>> from criobe_verify.baseline import Run
    >>> run = Run("b", "baseline", "", {}, {}, {}, None, None)
    >>> apart = [Timing("p95_s", 0.3, 0.9)]
    >>> c = Comparison(run, run, latency_image={"pth-lama": "1024×1024 → 1920×1920"},
    ...     latency_not_compared={"pth-lama": apart})
    >>> _latency_cells(c, "pth-lama", apart)
    ['1024×1024 → 1920×1920 (not compared: different image sizes)', '0.300 | 0.900']
    """
    image = c.latency_image.get(fn, "")
    if fn not in c.latency_not_compared:
        return [image, *(cell(t) for t in timings)]
    return [
        f"{image} ({LATENCY_NOT_COMPARED})",
        *(f"{_s(t.before)} | {_s(t.after)}" for t in timings),
    ]


def _not_compared(c: Comparison) -> str:
    side = "BEFORE" if c.before.fingerprint is None else "AFTER"
    return f"configuration not compared: {side} has no fingerprint (a summary.json)"


def _data_not_compared(c: Comparison) -> str:
    side = "BEFORE" if c.before.inventory is None else "AFTER"
    return f"data not compared: {side} has no inventory (a summary.json or an older baseline)"


def _answers_not_compared(c: Comparison) -> str:
    side = "BEFORE" if not c.before.answers else "AFTER"
    return f"function answers not compared: {side} kept none (the inference layer not run)"


def text_table(c: Comparison) -> str:
    lines = [
        "criobe-verify compare",
        f"  BEFORE  {c.before.source} ({c.before.label})",
        f"  AFTER   {c.after.source} ({c.after.label})",
    ]
    if c.drift is None:
        lines.append(_not_compared(c))
    if c.data is None:
        lines.append(_data_not_compared(c))
    if c.answers is None:
        lines.append(_answers_not_compared(c))
    for title, header, rows in sections(c):
        if not rows:
            lines.append(f"{title}: none")
            continue
        lines.append(f"{title}: {len(rows)}")
        clipped = [[x if len(x) <= CLIP else x[: CLIP - 1] + "…" for x in r] for r in rows]
        widths = [max(len(r[i]) for r in [header, *clipped]) for i in range(len(header))]
        for row in [header, *clipped]:
            lines.append("  " + "  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)))
    lines.append(f"result: {c.headline} (exit {c.exit_code})")
    return "\n".join(line.rstrip() for line in lines)


COLOURS = {0: "#1b7f3b", 10: "#b06b00", 1: "#b3261e"}


def html_page(c: Comparison) -> str:
    e = html.escape
    colour = COLOURS.get(c.exit_code, "#333")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>criobe-verify compare</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;"
        "margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;"
        "vertical-align:top}th{background:#eee}</style></head><body>",
        "<h1>criobe-verify compare</h1>",
        f"<p>BEFORE: {e(c.before.source)} ({e(c.before.label)})<br>"
        f"AFTER: {e(c.after.source)} ({e(c.after.label)})</p>",
        f'<div style="border-left:6px solid {colour};padding:6px 12px"><h2 style="color:'
        f'{colour};margin:0">{e(c.headline)}</h2><p>exit code {c.exit_code}</p></div>',
    ]
    parts += _sections_html(c)
    parts.append("</body></html>")
    return "\n".join(parts)


def timing_rows(c: Comparison) -> tuple[list, list, set[str]]:
    """The chart's rows: (label, p50, p95) per function timed on the same image size on both
    sides, (label, stage, None) per e2e stage, and the labels the regression rule calls
    slower."""
    from criobe_verify.regression import (  # it renders its messages with cell(): import here
        LATENCY_FLOOR_S,
        LATENCY_RATIO,
        STAGE_FLOOR_S,
        STAGE_RATIO,
        slower,
    )

    functions, stages, flagged = [], [], set()
    for fn, timings in sorted(c.latency.items()):
        by = {t.what: t for t in timings}
        if "p50_s" not in by:
            continue
        image = c.latency_image.get(fn)
        label = f"{fn}\non {image}" if image else fn
        functions.append((label, by["p50_s"], by.get("p95_s")))
        if slower(by["p50_s"], LATENCY_RATIO, LATENCY_FLOOR_S):
            flagged.add(label)
    for workflow, timings in c.stages.items():
        for t in timings:
            label = f"{workflow}: {t.what}"
            stages.append((label, t, None))
            if slower(t, STAGE_RATIO, STAGE_FLOOR_S):
                flagged.add(label)
    return functions, stages, flagged


def timing_chart(c: Comparison) -> str | None:
    """The latency and e2e figures before and after as one chart (base64 PNG), what the
    regression rule calls slower in red; None when neither side timed anything comparable."""
    from criobe_verify.charts import before_after_chart

    functions, stages, flagged = timing_rows(c)
    if not functions and not stages:
        return None
    return before_after_chart(functions, stages, flagged)


def _sections_html(c: Comparison, level: str = "h3") -> list[str]:
    e = html.escape
    parts = []
    if c.drift is None:
        parts.append(f"<p>{e(_not_compared(c))}</p>")
    if c.data is None:
        parts.append(f"<p>{e(_data_not_compared(c))}</p>")
    if c.answers is None:
        parts.append(f"<p>{e(_answers_not_compared(c))}</p>")
    for title, header, rows in sections(c):
        if title.startswith("Latency") and (chart := timing_chart(c)) is not None:
            # After the findings (flips, drift, data, answers), above the figures it draws.
            parts.append(
                f"<{level}>Latency and e2e stages, before and after</{level}>"
                f'<img alt="latency and e2e stages before and after" style="max-width:100%" '
                f'src="data:image/png;base64,{chart}">'
            )
        parts.append(f"<{level}>{e(title)} ({len(rows)})</{level}>")
        if rows:
            parts.append(
                "<table><tr>"
                + "".join(f"<th>{e(h)}</th>" for h in header)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{e(x)}</td>" for x in r) + "</tr>" for r in rows)
                + "</table>"
            )
    return parts


def before_after_html(c: Comparison) -> list[str]:
    """The run report's "Before / after" section (--baseline): the same sections as the
    compare page, under the comparison's headline."""
    e = html.escape
    colour = COLOURS.get(c.exit_code, "#333")
    return [
        f'<div id="criobe-before-after" style="border-left:6px solid {colour};padding:6px 12px;'
        f'margin:8px 0"><h2 style="margin:0">Before / after</h2>'
        f"<p>BEFORE: {e(c.before.source)} ({e(c.before.label)})<br>AFTER: this run</p>"
        f'<p style="color:{colour}"><b>{e(c.headline)}</b></p>',
        *_sections_html(c, "h4"),
        "</div>",
    ]
