"""The report's guards section: each guard's verdict, its measures (base or best rung vs candidate, the paired CI,
the tolerance and the rows it needs) worst first, and its plot."""

from __future__ import annotations

from tunegate.records import Decision

STATUS = {"passed": "passed", "failed": "**FAILED**", "reported": "reported", "not_measured": "not measured"}


def _harm(m) -> float:
    """How far past its tolerance the measure's CI reaches (larger: worse)."""
    end = -m.ci_low if m.higher_is_better else m.ci_high
    return end - (m.tolerance if m.tolerance is not None else 1.0)


def guards_section(decision: Decision, pct: str) -> list[str]:
    if not decision.guards:
        return []
    lines = [
        "## What tuning may break (guards)",
        "",
        "Each guard scores the candidate and its reference on the same rows with the same scorer; its tolerance is "
        f"checked as non-inferiority on the {pct} paired-bootstrap CI (the end of the CI on the side of harm must stay "
        "within it). *Rows needed*: the rows that tolerance needs at the gate's power; on fewer rows, a CI that "
        "neither clears the tolerance nor lies wholly past it is not judged (a too-small probe must not block every "
        "candidate): more rows would tell.",
        "",
        "| guard | result | blocks | reference | time |",
        "|---|---|---|---|---|",
    ]
    for g in decision.guards:
        lines.append(
            f"| {g.guard} | {STATUS[g.status]} | {'yes' if g.block else 'no'} | {g.reference} | {g.seconds:.1f} s |"
        )
    lines.append("")
    for g in decision.guards:
        lines += [f"### {g.guard}: {STATUS[g.status]}", "", g.sentence + ".", ""]
        if g.measures:
            lines += [
                f"| measure | unit | reference | candidate | difference ({pct} CI) | tolerance | rows | rows needed | "
                "verdict |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for m in sorted(g.measures, key=_harm, reverse=True):
                tol = "-" if m.tolerance is None else f"{'-' if m.higher_is_better else '+'}{m.tolerance:g}"
                verdict = {True: "ok", False: "**fails**", None: "reported"}[m.passed]
                note = f" ({m.note})" if m.note else ""
                lines.append(
                    f"| {m.name} | {m.unit} | {m.base:.3f} | {m.candidate:.3f} | {m.delta:+.3f} [{m.ci_low:+.3f}, "
                    f"{m.ci_high:+.3f}] | {tol} | {m.n} | {m.rows_needed if m.rows_needed is not None else '-'} | "
                    f"{verdict}{note} |"
                )
            lines.append("")
        lines += [f"- {w}" for w in g.warnings] + ([""] if g.warnings else [])
        if g.plot:
            lines += [f"![{g.guard}: candidate - reference per measure]({g.plot})", ""]
    return lines
