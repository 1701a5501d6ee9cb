"""Charts for the report, drawn with matplotlib (Agg, no display) as base64 PNGs.

png = latency_chart([{"function": "pth-lama", "p50_s": 0.2, "p95_s": 0.3, "max_s": 0.4,
                      "first_s": 0.9, "budget_s": 2.5}])
"""

from __future__ import annotations

import base64
import io
from typing import Any


def _png(figure: Any) -> str:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(out.getvalue()).decode()


def latency_chart(stats: list[dict[str, Any]]) -> str:
    """p50 / p95 / max per function as bars, the first call as a dot, the budget as a tick;
    each function labelled with the image size its figures are for."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = [
        f"{s['function']}\non {s['image']}" if s.get("image") else s["function"] for s in stats
    ]
    fig, ax = plt.subplots(figsize=(8, 0.7 * len(names) + 1.2))
    y = range(len(names))
    ax.barh(y, [s["max_s"] for s in stats], color="#f4c7c3", label="max")
    ax.barh(y, [s["p95_s"] for s in stats], color="#f28b82", label="p95")
    ax.barh(y, [s["p50_s"] for s in stats], color="#c5221f", label="p50")
    ax.scatter([s["first_s"] for s in stats], y, color="#202124", zorder=3, label="first call")
    budgets = [(i, s["budget_s"]) for i, s in enumerate(stats) if s.get("budget_s")]
    if budgets:
        ax.scatter([b for _, b in budgets], [i for i, _ in budgets], marker="|", s=400,
                   color="#188038", zorder=4, label="budget (p95)")  # fmt: skip
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per call")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    png = _png(fig)
    plt.close(fig)
    return png


def timeline_chart(run: Any) -> str:
    """The e2e run's stages on a time axis (start, duration), each with the latency of the
    function it waited for, as measured by this run (black tick)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    stages = run.stages
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(stages) + 1.2))
    for i, s in enumerate(stages):
        ax.barh(i, s.duration_s, left=s.start_s, color="#1a73e8")
        ax.text(
            s.start_s + s.duration_s, i, f" {s.duration_s:.1f} s", va="center", fontsize="small"
        )
        if s.function_s:
            ax.plot([s.start_s + s.function_s] * 2, [i - 0.35, i + 0.35], color="#202124")
    ax.set_yticks(range(len(stages)), [s.name for s in stages])
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds since the run started ({run.workflow}); tick: the function's own time")
    ax.grid(axis="x", alpha=0.3)
    png = _png(fig)
    plt.close(fig)
    return png


def before_after_chart(
    functions: list[tuple[str, Any, Any]], stages: list[tuple[str, Any, Any]], flagged: set[str]
) -> str:
    """Before and after side by side: each function's p50 (bars) and p95 (whisker), each e2e
    stage's duration, the ratio after/before written beside; what the regression rule calls
    slower (`flagged`, by row label) is drawn red, the rest blue. Rows are (label, Timing,
    whisker Timing or None): a function's p50 and p95, a stage and None."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    panels = [(t, rows) for t, rows in (("functions: p50, whisker p95", functions),
                                        ("e2e stages", stages)) if rows]  # fmt: skip
    heights = [len(rows) for _, rows in panels]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(8, 0.55 * sum(heights) + 1.4 * len(panels)), squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    for ax, (title, rows) in zip(axes[:, 0], panels, strict=True):
        y = range(len(rows))
        for i, (label, t, p95) in enumerate(rows):
            after_colour = "#c5221f" if label in flagged else "#1a73e8"
            ax.barh(i - 0.2, t.before or 0, height=0.38, color="#bdc1c6")
            ax.barh(i + 0.2, t.after or 0, height=0.38, color=after_colour)
            if p95 is not None:
                for dy, v in ((-0.2, p95.before), (0.2, p95.after)):
                    if v is not None:
                        ax.plot([v, v], [i + dy - 0.15, i + dy + 0.15], color="#202124")
            if t.ratio is not None:
                end = max(t.after or 0, t.before or 0, (p95.after or 0) if p95 else 0)
                ax.text(end, i + 0.2, f"  ×{t.ratio:.2f}", va="center", fontsize="small",
                        color=after_colour)  # fmt: skip
        ax.set_yticks(list(y), [label for label, _, _ in rows])
        ax.invert_yaxis()
        ax.set_title(title, fontsize="medium", loc="left")
        ax.set_xlabel("seconds (grey: before, blue: after, red: slower by the regression rule)")
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.15)
    fig.tight_layout()
    png = _png(fig)
    plt.close(fig)
    return png
