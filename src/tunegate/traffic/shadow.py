"""``tunegate shadow report NAME``: the gate carried into live traffic.

From the request log and the feedback (``traffic.log``): per version, how many requests it answered and its live
metric on the requests whose truth came back, with an always-valid confidence sequence; for each champion and
shadow pair, how often they agree, and on requests with feedback the gate's paired statistics (paired bootstrap CI
of the gate metric, McNemar) with a confidence sequence of the per-request difference that may be checked after
every feedback (``stats.confidence_sequence``); and the drift of the served inputs against the production
version's eval rows (``traffic.drift``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tunegate import metrics, stats
from tunegate.problems import task_type
from tunegate.registry import PRODUCTION, Registry
from tunegate.traffic.drift import drift_report
from tunegate.traffic.log import read_feedback, read_requests, traffic_dir


def _truth(fb: dict[str, Any] | None, answers: str) -> Any:
    if fb is None:
        return None
    value = fb.get("label") if fb.get("label") is not None else fb.get("reference")
    if value is None:
        return None
    return float(value) if answers == "number" else str(value)


def row_scores(metric: str, answers: str, predictions: list, truths: list) -> list[float] | None:
    """One score per request whose mean is the live metric: correctness for labels, else the gate metric's per-row
    score when it is a mean of them (None when it is not)."""
    if answers == "labels":
        return [float(str(p) == str(t)) for p, t in zip(predictions, truths)]
    return metrics.row_scores(metric, predictions, truths) if predictions else []


def live_metric_name(metric: str, answers: str) -> str:
    return "accuracy" if answers == "labels" else metric


def version_facts(reg: Registry, name: str, version: int) -> dict[str, Any]:
    """What the report needs of a registered version: its task, gate metric and value, and its eval rows."""
    import polars as pl

    from tunegate.methods import TuningMethod

    info = reg.get(name, version)
    meta = TuningMethod.read_meta(info.path / "artifact")
    eval_path = info.path / "eval.parquet"
    rows = pl.read_parquet(eval_path) if eval_path.exists() else None
    return {
        "task": meta["task"],
        "answers": task_type(meta["task"]).answers,
        "metric": info.meta.get("gate_metric"),
        "eval_metric": info.meta.get("metric"),
        "eval_texts": rows.get_column("text").cast(str).to_list() if rows is not None else [],
        "eval_labels": rows.get_column("label").cast(str).to_list()
        if rows is not None and "label" in rows.columns
        else None,
    }


def compare_shadow(
    rows: list[dict[str, Any]],
    feedback: dict[str, dict[str, Any]],
    *,
    facts: dict[str, Any],
    alpha: float,
    min_feedback: int,
) -> dict[str, Any]:
    """Champion (answered) against its shadow on the same requests: agreement, and the paired statistics on the
    requests with feedback; a verdict that only calls a difference the confidence sequence has seen."""
    answers, metric = facts["answers"], facts["metric"]
    agree = sum(str(r["answer"]) == str(r["shadow"]["answer"]) for r in rows)
    out: dict[str, Any] = {
        "champion": rows[0]["version"],
        "challenger": rows[0]["shadow"]["version"],
        "requests": len(rows),
        "agreement": agree / len(rows),
        "shadow_latency_ms": sum(r["shadow"].get("latency_ms", 0.0) for r in rows) / len(rows),
    }
    judged = [(r, t) for r in rows if (t := _truth(feedback.get(r["id"]), answers)) is not None]
    out["feedback"] = len(judged)
    live = live_metric_name(metric, answers)
    out["live_metric"] = live
    if not judged:
        out["verdict"] = "no feedback yet: nothing to judge (POST /v1/feedback {id, label|reference})"
        return out
    truths = [t for _, t in judged]
    champ = [r["answer"] for r, _ in judged]
    chall = [r["shadow"]["answer"] for r, _ in judged]
    s_champ, s_chall = row_scores(live, answers, champ, truths), row_scores(live, answers, chall, truths)
    if s_champ is None or s_chall is None:
        out["verdict"] = f"{live} is not a mean of per-request scores: no sequential test"
        return out
    out["champion_value"] = sum(s_champ) / len(s_champ)
    out["challenger_value"] = sum(s_chall) / len(s_chall)
    diffs = [b - a for a, b in zip(s_champ, s_chall)]
    cs = stats.confidence_sequence(diffs, alpha=alpha, bounds=(-1.0, 1.0) if answers == "labels" else None)
    out["sequence"] = {"delta": cs.mean, "low": cs.low, "high": cs.high, "alpha": alpha}
    gate = metric if metric in metrics.metrics_for(facts["task"]) else live
    boot = stats.paired_bootstrap(
        gate, candidate={"predictions": chall}, baseline={"predictions": champ}, references=truths, resamples=1000
    )
    out["bootstrap"] = {"metric": gate, "delta": boot.delta, "ci_low": boot.ci_low, "ci_high": boot.ci_high}
    if answers == "labels":
        mc = stats.mcnemar_exact([bool(x) for x in s_chall], [bool(x) for x in s_champ])
        out["mcnemar"] = {"challenger_only": mc.candidate_only, "champion_only": mc.baseline_only, "p": mc.p_value}
    out["verdict"] = _verdict(cs, len(judged), min_feedback)
    return out


def _verdict(cs: stats.ConfidenceSequence, n: int, min_feedback: int) -> str:
    span = f"[{cs.low:+.3f}, {cs.high:+.3f}]"
    if n < min_feedback:
        return f"too little feedback yet ({n} of {min_feedback} requests): keep the champion"
    if cs.high < 0:
        return f"challenger WORSE: its difference {cs.mean:+.3f} {span} is below 0 with confidence: refuse it"
    if cs.low > 0:
        return f"challenger better: {cs.mean:+.3f} {span} above 0 with confidence: it may be promoted"
    return f"no difference detected: {cs.mean:+.3f} {span} contains 0: keep the champion"


def live_by_version(
    rows: list[dict[str, Any]], feedback: dict, *, facts: dict[str, Any], alpha: float
) -> dict[str, dict[str, Any]]:
    """Each version's requests and its live metric on those with feedback (with the confidence sequence)."""
    by: dict[str, list] = defaultdict(list)
    for r in rows:
        by[r["version"]].append(r)
    out = {}
    for version, rs in by.items():
        judged = [(r["answer"], t) for r in rs if (t := _truth(feedback.get(r["id"]), facts["answers"])) is not None]
        entry: dict[str, Any] = {"requests": len(rs), "routes": dict(Counter(r.get("route", "?") for r in rs))}
        scores = row_scores(
            live_metric_name(facts["metric"], facts["answers"]),
            facts["answers"],
            [a for a, _ in judged],
            [t for _, t in judged],
        )
        entry["feedback"] = len(judged)
        if judged and scores is not None:
            cs = stats.confidence_sequence(
                scores, alpha=alpha, bounds=(0.0, 1.0) if facts["answers"] == "labels" else None
            )
            entry["live"] = {"value": cs.mean, "low": cs.low, "high": cs.high}
        out[version] = entry
    return out


def shadow_report(
    registry_root: str | Path,
    name: str,
    *,
    log_dir: str | Path | None = None,
    alpha: float = 0.05,
    min_feedback: int = 30,
    drift_threshold: float = 0.1,
) -> dict[str, Any]:
    """The whole report as a dict (``render`` makes it readable)."""
    reg = Registry(registry_root)
    folder = traffic_dir(registry_root, name, log_dir)
    requests, feedback = read_requests(folder), read_feedback(folder)
    production = reg.aliases(name).get(PRODUCTION)
    newest = max((int(r["version"].rsplit("@v", 1)[1]) for r in requests), default=None)
    facts = version_facts(reg, name, production or newest) if (production or newest) else None
    report: dict[str, Any] = {"model": name, "log": str(folder), "requests": len(requests), "production": production}
    report["with_feedback"] = sum(r["id"] in feedback for r in requests)
    if facts is None or not requests:
        report["note"] = f"no requests logged in {folder} yet"
        return report
    if facts["answers"] != "text":  # a label or a number is what /v1/predict answers; a chat reply is text
        requests = [r for r in requests if r.get("endpoint", "predict") == "predict"]
    report["versions"] = live_by_version(requests, feedback, facts=facts, alpha=alpha)
    pairs: dict[tuple, list] = defaultdict(list)
    for r in requests:
        if r.get("shadow"):
            pairs[r["version"], r["shadow"]["version"]].append(r)
    report["shadows"] = [
        compare_shadow(rs, feedback, facts=facts, alpha=alpha, min_feedback=min_feedback) for rs in pairs.values()
    ]
    served = [r for r in requests if r.get("route") in ("production", "canary")] or requests
    report["drift"] = drift_report(
        served_texts=[r.get("input") for r in served],
        served_chars=[int(r.get("input_chars", 0)) for r in served],
        predicted=[str(r["answer"]) for r in served] if facts["answers"] == "labels" else None,
        eval_texts=facts["eval_texts"],
        eval_labels=facts["eval_labels"],
        threshold=drift_threshold,
    )
    return report


def render(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    name = report["model"]
    prod = f"v{report['production']}" if report.get("production") else "none"
    lines = [
        f"# Live traffic of {name}",
        "",
        f"{report['requests']} requests logged in `{report['log']}`, {report.get('with_feedback', 0)} with feedback; "
        f"production is {prod}.",
    ]
    if "note" in report:
        return "\n".join([*lines, "", report["note"], ""])
    lines += ["", "## Versions", "", "| version | requests | routes | with feedback | live (always-valid CI) |"]
    lines.append("|---|---|---|---|---|")
    for version, v in report["versions"].items():
        live = v.get("live")
        cell = f"{live['value']:.3f} [{live['low']:.3f}, {live['high']:.3f}]" if live else "-"
        routes = ", ".join(f"{k} {n}" for k, n in v["routes"].items())
        lines.append(f"| {version} | {v['requests']} | {routes} | {v['feedback']} | {cell} |")
    for s in report["shadows"]:
        lines += ["", f"## Shadow: {s['challenger']} beside {s['champion']}", ""]
        lines.append(
            f"- {s['requests']} requests; the answers agree on {s['agreement']:.1%}; the shadow took "
            f"{s['shadow_latency_ms']:.0f} ms on average (not seen by clients)"
        )
        if "sequence" in s:
            q, b = s["sequence"], s["bootstrap"]
            lines.append(
                f"- on {s['feedback']} requests with feedback: {s['live_metric']} {s['champion_value']:.3f} "
                f"(champion) vs {s['challenger_value']:.3f} (challenger)"
            )
            lines.append(
                f"- difference {q['delta']:+.3f}, always-valid {1 - q['alpha']:.0%} interval [{q['low']:+.3f}, "
                f"{q['high']:+.3f}] (valid however often it is checked); paired bootstrap on {b['metric']} "
                f"{b['delta']:+.3f} [{b['ci_low']:+.3f}, {b['ci_high']:+.3f}]"
            )
            if "mcnemar" in s:
                m = s["mcnemar"]
                lines.append(
                    f"- McNemar: challenger right alone on {m['challenger_only']}, champion alone on "
                    f"{m['champion_only']} (p = {m['p']:.3g})"
                )
        lines.append(f"- **{s['verdict']}**")
    lines += ["", "## Drift of the served inputs against the production version's eval rows", ""]
    lines += _drift_lines(report["drift"])
    return "\n".join(lines) + "\n"


def _drift_lines(d: dict[str, Any]) -> list[str]:
    if "length" not in d:
        return [d.get("note", "nothing served yet")]
    ln = d["length"]
    out = [
        f"- {d['n_served']} served inputs vs {d['n_eval']} eval rows",
        f"- length: median {ln['served_median']:.0f} vs {ln['eval_median']:.0f} characters (KS {ln['ks']:.2f}, "
        f"p = {ln['p_value']:.3g})",
    ]
    if d.get("labels"):
        lab = d["labels"]
        shares = ", ".join(f"{k} {lab['served'][k]:.0%} (eval {lab['eval'][k]:.0%})" for k in lab["served"])
        out.append(f"- predicted labels: {shares}; total variation {lab['tvd']:.2f}")
    if d.get("tokens"):
        t = d["tokens"]
        out.append(
            f"- words: Jensen-Shannon {t['js']:.3f} vs {t['chance']:.3f} between random halves: drift score "
            f"{t['score']:.3f} (p = {t['p_value']:.3g}; threshold {d['threshold']})"
        )
    if d.get("drifted") is None:
        out.append(f"- {d.get('note', '')}")
    else:
        out.append("- **DRIFT**: retrain on recent data" if d["drifted"] else "- no drift past the threshold")
    return out


def production_drift(
    registry_root: str | Path,
    name: str,
    *,
    log_dir: str | Path | None = None,
    threshold: float = 0.1,
    min_requests: int = 100,
):
    """The drift trigger's check: the inputs the production version answered (its logged production and canary
    requests) against its eval rows; a ``records.DriftCheck``."""
    from tunegate.records import DriftCheck

    reg = Registry(registry_root)
    production = reg.aliases(name).get(PRODUCTION) if name in reg.models() else None
    if production is None:
        return DriftCheck(drifted=None, threshold=threshold, message=f"{name} has no production version yet")
    version = f"{name}@v{production}"
    folder = traffic_dir(registry_root, name, log_dir)
    served = [
        r
        for r in read_requests(folder)
        if r.get("version") == version and r.get("route") in ("production", "canary", "direct")
    ]
    if len(served) < min_requests:
        return DriftCheck(
            drifted=None,
            threshold=threshold,
            requests=len(served),
            message=f"{len(served)} requests served by {version} logged in {folder} (fewer than {min_requests}): "
            "no drift check yet",
        )
    facts = version_facts(reg, name, production)
    d = drift_report(
        served_texts=[r.get("input") for r in served],
        served_chars=[int(r.get("input_chars", 0)) for r in served],
        predicted=None,
        eval_texts=facts["eval_texts"],
        eval_labels=None,
        threshold=threshold,
    )
    if d["drifted"] is None:
        return DriftCheck(drifted=None, threshold=threshold, requests=len(served), message=d.get("note", ""))
    score = d["tokens"]["score"]
    verdict = "past" if d["drifted"] else "within"
    return DriftCheck(
        drifted=d["drifted"],
        score=score,
        threshold=threshold,
        requests=len(served),
        message=f"drift score {score:.3f} of {len(served)} inputs served by {version} is {verdict} the threshold "
        f"{threshold} (words JS {d['tokens']['js']:.3f} vs {d['tokens']['chance']:.3f} by chance)",
    )
