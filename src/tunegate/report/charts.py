"""The plots a run writes: the loss curve, each model's metric with its CI, quality vs cost, break-even."""

from __future__ import annotations

from pathlib import Path


def save_loss_plot(
    losses: list[float], path: Path, xlabel: str = "optimizer step", selection: dict | None = None
) -> None:
    """The training loss per step (and its moving mean); with early stopping, the selection-split loss at each
    evaluation and the step whose weights were kept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(range(1, len(losses) + 1), losses, lw=1, alpha=0.5, label=f"{xlabel.split()[-1]} loss")
    if len(losses) >= 5:
        w = max(2, len(losses) // 10)
        smooth = [
            sum(losses[max(0, i - w + 1) : i + 1]) / len(losses[max(0, i - w + 1) : i + 1]) for i in range(len(losses))
        ]
        ax.plot(range(1, len(losses) + 1), smooth, lw=2, label=f"moving mean ({w})")
    if selection:
        steps, values = zip(*selection["curve"])
        ax.plot(steps, values, "o-", lw=2, color="tab:red", label="selection-split loss")
        kept = "kept" if "stopped_at" in selection else "lowest"  # early stopping keeps it; a watch only marks it
        ax.axvline(
            selection["best_step"], color="tab:red", ls=":", lw=1, label=f"{kept}: step {selection['best_step']}"
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training loss")
    ax.set_title("Training loss" + (f" ({selection['verdict']})" if selection else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_comparison_chart(rows: list[dict], metric: str, path: Path, confidence: float = 0.95) -> None:
    """Horizontal bars of the gate metric with CI whiskers: baselines grey, methods by the gate's verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.55 * len(rows) + 1.4), dpi=100)
    colors = {"promote": "#2e7d32", "reject": "#c62828", "best baseline": "#616161", "baseline": "#9e9e9e"}
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        if r.get("metric") is None:
            ax.text(0.01, y, f"{r['name']}: {r['status']}", va="center", fontsize=9, color="#c62828")
            continue
        err = [[r["metric"] - r["ci_low"]], [r["ci_high"] - r["metric"]]]
        ax.barh(y, r["metric"], xerr=err, color=colors.get(r["decision"], "#1565c0"), capsize=4, height=0.6)
        ax.text(r["ci_high"] + 0.01, y, f"{r['metric']:.3f}", va="center", fontsize=9)
    best = next((r for r in rows if r.get("decision") == "best baseline"), None)
    if best is not None:
        ax.axvline(best["metric"], color="#616161", ls="--", lw=1)
    ax.set_yticks(range(len(rows)), [r["name"] for r in reversed(rows)])
    lows = [r["ci_low"] for r in rows if r.get("metric") is not None]
    ax.set_xlim(min([0.0, *lows]) - (0.05 if min([0.0, *lows]) < 0 else 0.0), 1.1)  # R2 can be negative
    ax.set_xlabel(f"{metric} ({100 * confidence:.0f}% bootstrap CI)")
    ax.set_title("Same eval rows. Grey: baselines; green: promoted; red: not promoted", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def save_quality_cost_plot(rows: list[dict], metric: str, path: Path, prices_label: str) -> None:
    """Each rung and candidate at (cost per 1K requests, metric with its CI): up-left is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    colors = {
        "baseline": "#9e9e9e",
        "best baseline": "#616161",
        "promote": "#2e7d32",
        "reject": "#c62828",
        "production": "#1565c0",
    }
    seen: dict[tuple, int] = {}
    for r in rows:
        x = 1000 * r["per_request_usd"]
        ax.errorbar(
            [x],
            [r["metric"]],
            yerr=[[r["metric"] - r["ci_low"]], [r["ci_high"] - r["metric"]]],
            fmt="o",
            capsize=3,
            color=colors.get(r["decision"], "#1565c0"),
            ms=7,
        )
        near = (round(x, 6), round(r["metric"], 2))  # points on top of each other: stack their labels
        k = seen[near] = seen.get(near, -1) + 1
        ax.annotate(r["name"], (x, r["metric"]), textcoords="offset points", xytext=(6, 4 - 11 * k), fontsize=8)
    ax.set_xlabel(f"$ per 1,000 requests ({prices_label})")
    ax.set_ylabel(metric)
    ax.set_title("Quality vs cost per request (up and to the left is better)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def save_break_even_plot(lines: list, break_even, path: Path, requests_per_month: int) -> None:
    """Cumulative cost (one-off + requests x per-request) of the candidate and each baseline over request volume."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizon = 3 * max(requests_per_month, 1)
    if break_even is not None and break_even.requests:
        horizon = max(horizon, 2 * break_even.requests)
    # a break-even far left of the horizon would be invisible on a linear axis: use a log axis then
    log_x = break_even is not None and bool(break_even.requests) and break_even.requests < horizon / 50
    xs = [horizon ** (i / 200) for i in range(201)] if log_x else [horizon * i / 100 for i in range(101)]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for c in lines:
        emphasis = c.kind != "baseline" or (break_even is not None and c.name == break_even.against)
        ax.plot(
            xs,
            [c.one_off_usd + x * c.per_request_usd for x in xs],
            label=c.name,
            lw=2.2 if emphasis else 0.8,
            alpha=1.0 if emphasis else 0.5,
        )
    if break_even is not None and break_even.requests:
        cand = next(c for c in lines if c.name == break_even.candidate)
        y = cand.one_off_usd + break_even.requests * cand.per_request_usd
        ax.axvline(break_even.requests, color="#2e7d32", ls="--", lw=1)
        ax.annotate(
            f"break-even: {break_even.requests:,.0f} requests",
            (break_even.requests, y),
            textcoords="offset points",
            xytext=(5, -12),
            fontsize=8,
            color="#2e7d32",
        )
    for m in range(1, int(horizon // max(requests_per_month, 1)) + 1):
        if requests_per_month and m * requests_per_month <= horizon:
            ax.axvline(m * requests_per_month, color="#bdbdbd", lw=0.6, ls=":")
    if log_x:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"requests served{' (log scales)' if log_x else ''} (dotted: months at {requests_per_month:,}/month)")
    ax.set_ylabel("cumulative cost ($)")
    title = "Break-even: " + (break_even.reason.split(":")[0] if break_even is not None else "n/a")
    ax.set_title(title[:90], fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def save_guard_plot(measures: list, path: Path, title: str) -> None:
    """A guard's measures, one bar each (worst first): candidate - reference with its CI, the tolerance as a dashed
    line on the side of harm; judged bars green (passed) or red (failed), unjudged ones grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(measures) + 1.4), dpi=100)
    colors = {True: "#2e7d32", False: "#c62828", None: "#9e9e9e"}
    for i, m in enumerate(measures):
        y = len(measures) - 1 - i
        err = [[m.delta - m.ci_low], [m.ci_high - m.delta]]
        ax.barh(y, m.delta, xerr=err, color=colors[m.passed], capsize=3, height=0.6)
        ax.text(max(m.ci_high, 0) + 0.005, y, f"{m.delta:+.3f} (n={m.n})", va="center", fontsize=8)
    tolerances = {(m.tolerance, m.higher_is_better) for m in measures if m.tolerance is not None}
    for tol, higher in tolerances:
        ax.axvline(-tol if higher else tol, color="#c62828", ls="--", lw=1)
    ax.axvline(0, color="#424242", lw=0.8)
    ax.set_yticks(range(len(measures)), [m.name for m in reversed(measures)])
    ax.set_xlabel("candidate - reference (CI); dashed: the tolerance")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def save_retention_plot(rows: list[dict], metric: str, path: Path) -> None:
    """The freezing trade-off: each compared entry's gate metric against its first retention probe (e.g. a sweep
    of method.layers), with both CIs; the base model's probe score and the best rung's metric as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.get("retention") and r.get("metric") is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for r in points:
        x, y = r["retention"]["candidate"], r["metric"]
        # the probe's CI is of the drop: shifted onto the candidate's score
        base = r["retention"]["base"]
        xerr = [[x - (base + r["retention"]["ci_low"])], [(base + r["retention"]["ci_high"]) - x]]
        yerr = [[y - r["ci_low"]], [r["ci_high"] - y]]
        color = {"promote": "#2e7d32", "reject": "#c62828"}.get(r.get("decision"), "#1565c0")
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color=color, capsize=3)
        ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if points:
        ax.axvline(points[0]["retention"]["base"], color="#616161", ls="--", lw=1, label="base model")
        probe = points[0]["retention"]["name"]
    else:
        probe = "retention probe"
    best = next((r for r in rows if r.get("decision") == "best baseline"), None)
    if best is not None:
        ax.axhline(best["metric"], color="#9e9e9e", ls=":", lw=1, label=f"best rung ({best['name']})")
    ax.set_xlabel(f"{probe} accuracy (retention; CI of the drop from the base)")
    ax.set_ylabel(f"{metric} on the eval rows")
    ax.set_title("Target metric vs retention")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
