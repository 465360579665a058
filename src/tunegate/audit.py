"""The registry's append-only audit log: one JSON line per pipeline run, hash-chained.

``<registry>/audit.jsonl`` gets one line per run (promoted or not, failed or not);
``<registry>/audit/<run_id>/`` holds that run's evidence: per-example predictions of
every compared model, decision.json and the reports, each file's sha256 recorded in
the line. Each line carries the sha256 of the line before it, so editing or deleting
a past line breaks the chain, and its own hash; the newest line's hash and the line count
are also kept in ``audit.head`` (written atomically under the same lock), so editing or
dropping the newest line is caught too. Evidence is written to a temp folder and renamed into
place before the line is appended under a file lock, so a crash leaves either no
record or a complete one.

``verify`` recomputes a run's decision from its stored predictions and its recorded
gate with the same pure gate function the run used, checks the hashes, and cross-checks
the fields the record states (base model, decision, cost, data hash) against its evidence
files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tunegate.config import GateSpec, RegistryConfig
from tunegate.errors import RegistryError
from tunegate.provenance import code_version, sha256_file
from tunegate.records import AuditRecord, Decision, RunContext, RunOutcome
from tunegate.registry import file_lock

LOG = "audit.jsonl"
HEAD = "audit.head"
PENDING = "audit.head.pending"


def _read_head(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


EVIDENCE = "audit"


EVIDENCE_FILES = (
    "decision.json",
    "models.json",
    "report.md",
    "report.html",
    "validation.json",
    "validation.md",
    "config.yaml",
    "deployment.json",
    "change.json",
    "guards.json",
)


def record_run(
    registry: RegistryConfig, spec: GateSpec, method: str, run: RunContext, outcome: RunOutcome
) -> AuditRecord:
    """Append a run's record (and copy its evidence from the run folder) to the audit log of ``registry``; failed
    and skipped runs too (``spec``: the declared gate; ``method``: the configured method, for a run that failed
    before training). Everything the record says comes from the records passed in, not from files read back."""
    validation, tuned, error = outcome.validation, outcome.tuned, outcome.error
    run_dir = Path(run.run_dir)
    rec = AuditRecord(
        run_id=run.run_id,
        time="",
        model_name=registry.model_name,
        status=outcome.status,
        failed_stage=outcome.failed_stage,
        error=error[:2000] if error else None,
        task=spec.task,
        config_hash=run.config_hash,
        code_version=code_version(),
        base_model=run.model_spec,
        method=tuned.method if tuned is not None else method,
        run_dir=str(run_dir),
        gate={**spec.gate.model_dump(mode="json"), "metric": spec.metric},
        gate_metric=spec.metric,
        trigger=outcome.trigger,
        headline=outcome.headline,
        data_hash=(validation.stats.get("data_hash") if validation is not None else None),
    )
    if outcome.decision is not None:
        rec = rec.model_copy(update=_decision_fields(outcome.decision, rec.data_hash))
    if outcome.deployment is not None:
        rec.deployed = outcome.deployment.model_dump(mode="json")
    evidence = {f"predictions/{f.name}": f for f in sorted((run_dir / "predictions").glob("*.jsonl"))}
    evidence.update({name: run_dir / name for name in EVIDENCE_FILES})
    return AuditLog(registry.path).append(rec, evidence)


def _decision_fields(decision: Decision, data_hash: str | None) -> dict:
    """What an audit record says about the gate's decision: the verdict, the claim, the costs, every model's CI."""
    vs = decision.comparisons[0] if decision.comparisons else None
    tuned_line = next((c for c in decision.cost_model if c.kind == "tuned"), None)
    base_line = next((c for c in decision.cost_model if c.name == decision.best_baseline), None)
    return {
        "decision": decision.decision,
        "headline": decision.headline,
        "gate": decision.gate,
        "data_hash": decision.provenance.get("data_hash", data_hash),
        "best_baseline": decision.best_baseline,
        "delta": decision.delta,
        "ci_low": decision.ci_low,
        "ci_high": decision.ci_high,
        "mcnemar_p": vs.mcnemar_p if vs else None,
        "mde": vs.mde if vs else None,
        "cost": {
            "train_usd": tuned_line.one_off_usd if tuned_line else None,
            "train_seconds": tuned_line.one_off_seconds if tuned_line else None,
            "tuned_per_1k_requests_usd": 1000 * tuned_line.per_request_usd if tuned_line else None,
            "baseline_per_1k_requests_usd": 1000 * base_line.per_request_usd if base_line else None,
            "tuned_monthly_usd": tuned_line.monthly_usd if tuned_line else None,
            "break_even_requests": decision.break_even.requests if decision.break_even else None,
            "break_even": decision.break_even.reason if decision.break_even else None,
        },
        # every rung and candidate with its CI, as the report shows them
        "metrics": {m.name: {"metric": m.metric, "ci_low": m.ci_low, "ci_high": m.ci_high} for m in decision.models},
        "guards": {g.guard: g.status + ("" if g.block else " (not blocking)") for g in decision.guards},
    }


def line_hash(line: str) -> str:
    return hashlib.sha256(line.rstrip("\n").encode()).hexdigest()


def record_hash(data: dict) -> str:
    """sha256 of a record's canonical JSON with ``record_hash`` itself left empty."""
    return hashlib.sha256(json.dumps({**data, "record_hash": ""}, sort_keys=True, default=str).encode()).hexdigest()


class AuditLog:
    """The registry's append-only, hash-chained audit log (audit.jsonl) and its evidence folders."""

    def __init__(self, registry_root: str | Path):
        self.root = Path(registry_root)
        self.path = self.root / LOG

    def _locked(self, timeout: float = 60.0):
        return file_lock(self.root / ".audit.lock", timeout=timeout, what=f"audit log {self.path}")

    def _lines(self) -> list[str]:
        if not self.path.is_file():
            return []
        return [ln for ln in self.path.read_text().splitlines() if ln.strip()]

    def append(self, record: AuditRecord, evidence: dict[str, Path] | None = None) -> AuditRecord:
        """Copy ``evidence`` (name in the evidence folder -> file) under audit/<run_id>/, then append the record."""
        evidence = {k: Path(v) for k, v in (evidence or {}).items() if Path(v).is_file()}
        hashes: dict[str, str] = {}
        ev_dir = self.root / EVIDENCE / record.run_id
        mark = json.dumps({"run_id": record.run_id})[1:-1]  # as the line holds it (json.dumps, sort_keys)
        earlier = sum(1 for ln in self._lines() if mark in ln)
        if earlier:  # a resumed run (`--resume`): each record keeps the evidence it was written with
            ev_dir = ev_dir.with_name(f"{record.run_id}.{earlier + 1}")
        if evidence:
            (self.root / EVIDENCE).mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{record.run_id}-", dir=self.root / EVIDENCE))
            try:
                for rel, src in evidence.items():
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, tmp / rel)
                    hashes[rel] = sha256_file(tmp / rel)
                if ev_dir.exists():  # a retried task: the evidence of the earlier attempt is replaced whole
                    shutil.rmtree(ev_dir)
                os.rename(tmp, ev_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        with self._locked():
            self._drop_torn_tail()
            lines = self._lines()
            prev = line_hash(lines[-1]) if lines else ""
            rec = record.model_copy(
                update={
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "evidence": hashes,
                    "prev_hash": prev,
                    "evidence_dir": ev_dir.relative_to(self.root).as_posix() if hashes else None,
                }
            )
            data = rec.model_dump(mode="json")
            rec = rec.model_copy(update={"record_hash": record_hash(data)})
            line = json.dumps(rec.model_dump(mode="json"), sort_keys=True, default=str)
            # the head to be is written first (pending), then the line, then the head is replaced: a kill at any
            # point leaves the log and a head (or the pending one) that agree
            pending = self._write_head(len(lines) + 1, line_hash(line), pending=True)
            with open(self.path, "a") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(pending, self.root / HEAD)
        return rec

    def evidence_path(self, rec: AuditRecord) -> Path | None:
        """The record's evidence folder inside this registry (a copied or moved registry checks its own files).
        Records written before the path was relative hold an absolute one: its last two parts
        (``audit/<run_id>``) are looked up here too."""
        if not rec.evidence_dir:
            return None
        recorded = Path(rec.evidence_dir)
        return self.root / (Path(*recorded.parts[-2:]) if recorded.is_absolute() else recorded)

    def _drop_torn_tail(self) -> None:
        """Cut a last line that has no newline: an append killed mid-write, never acknowledged (and never in the
        head), so the next record starts on a line of its own."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())

    def _write_head(self, count: int, head: str, pending: bool = False) -> Path:
        """The log's length and newest line's hash, outside the log (temp + rename: never half-written); with
        ``pending``, into ``audit.head.pending`` (the head once the line being appended is in)."""
        tmp = self.root / f".{HEAD}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(json.dumps({"lines": count, "head": head}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        target = self.root / (PENDING if pending else HEAD)
        os.replace(tmp, target)
        return target

    def records(
        self, *, model: str | None = None, since: str | None = None, until: str | None = None
    ) -> list[AuditRecord]:
        """Every record, oldest first; ``since``/``until`` compare ISO dates (YYYY-MM-DD, inclusive)."""
        out = []
        for i, ln in enumerate(self._lines(), 1):
            try:
                rec = AuditRecord.model_validate_json(ln)
            except ValueError as exc:
                raise RegistryError(
                    f"{self.path} line {i} is not an audit record ({str(exc).splitlines()[0]}): the log was damaged "
                    "or edited by hand. Restore audit.jsonl from a backup; `tunegate audit verify RUN` names every "
                    "line that no longer links"
                ) from None
            day = rec.time[:10]
            if model and rec.model_name != model:
                continue
            if since and day < since:
                continue
            if until and day > until:
                continue
            out.append(rec)
        return out

    def get(self, run_id: str) -> AuditRecord:
        if not run_id.strip():  # an empty prefix would match every run
            raise RegistryError(
                "the run id is empty; give a run id or a unique prefix of one (`tunegate audit` lists them)"
            )
        matches = [r for r in self.records() if r.run_id == run_id or r.run_id.startswith(run_id)]
        if not matches:
            raise RegistryError(f"no audit record for run '{run_id}' in {self.path} (`tunegate audit` lists the runs)")
        exact = [r for r in matches if r.run_id == run_id]
        if exact:
            return exact[-1]
        if len({r.run_id for r in matches}) > 1:
            raise RegistryError(f"'{run_id}' matches several runs: {', '.join(sorted({r.run_id for r in matches}))}")
        return matches[-1]

    def chain_breaks(self) -> list[str]:
        """What does not link up: a line whose prev_hash is not the line before it (edited, inserted or deleted
        lines), a line whose own hash does not match its content, or a newest line / line count that differs from
        audit.head (the newest line edited or dropped)."""
        breaks = []
        lines = self._lines()
        for i, ln in enumerate(lines):
            want = line_hash(lines[i - 1]) if i else ""
            try:
                data = json.loads(ln)
            except json.JSONDecodeError:
                breaks.append(f"line {i + 1} is not JSON")
                continue
            if data.get("prev_hash", None) != want:
                breaks.append(f"line {i + 1} ({data.get('run_id')}): prev_hash does not match line {i}")
            own = data.get("record_hash")
            if own and own != record_hash(data):  # records from before record_hash existed have none
                breaks.append(f"line {i + 1} ({data.get('run_id')}): its content does not match its record_hash")
        head_path = self.root / HEAD
        if head_path.is_file():
            head = _read_head(head_path)
            pending = _read_head(self.root / PENDING)
            if lines and pending == {"lines": len(lines), "head": line_hash(lines[-1])}:
                head = pending  # the newest append was stopped after its line was in, before the head was replaced
            if head.get("lines") != len(lines):
                breaks.append(f"{HEAD} records {head.get('lines')} line(s), the log has {len(lines)}")
            elif lines and head.get("head") != line_hash(lines[-1]):
                breaks.append(f"line {len(lines)} (the newest) does not match the hash kept in {HEAD}")
        elif any('"record_hash": "' in ln and '"record_hash": ""' not in ln for ln in lines):
            breaks.append(f"{HEAD} is missing (it is written with every record)")
        return breaks


@dataclass
class Verification:
    """What `tunegate audit verify` found: the recorded decision vs the one re-computed from the evidence."""

    run_id: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append((name, ok, detail))


def verify(log: AuditLog, run_id: str) -> Verification:
    """Recompute a run's decision from its stored predictions and recorded gate; check hashes and the chain."""
    from tunegate.config import GateConfig
    from tunegate.records import Decision

    breaks = log.chain_breaks()
    try:
        rec = log.get(run_id)
    except RegistryError as exc:
        if not breaks:  # the run is not there: nothing to verify
            raise
        v = Verification(run_id=run_id)  # a damaged log: say where, do not send the user back to this command
        v.add("hash chain of the log", False, "; ".join(breaks))
        v.add("the run's record can be read", False, str(exc).split(": the log was")[0])
        return v
    v = Verification(run_id=rec.run_id)
    v.add("hash chain of the log", not breaks, "; ".join(breaks) or f"{len(log._lines())} lines linked")
    if rec.status != "completed":
        v.add("run status", True, f"{rec.status} at {rec.failed_stage}: nothing to recompute")
        return v
    ev = log.evidence_path(rec) or log.root / EVIDENCE / rec.run_id
    bad = [rel for rel, h in rec.evidence.items() if not (ev / rel).is_file() or sha256_file(ev / rel) != h]
    v.add("evidence files unchanged (sha256)", not bad, ", ".join(bad) or f"{len(rec.evidence)} files")
    if bad or "decision.json" not in rec.evidence:
        return v
    stored = Decision.model_validate_json((ev / "decision.json").read_text())
    for name, ok, detail in cross_checks(rec, stored, ev):
        v.add(name, ok, detail)
    gate_fields = {k: val for k, val in (rec.gate or {}).items() if k in GateConfig.model_fields}
    v.add("recorded gate = the gate in decision.json", {k: stored.gate.get(k) for k in gate_fields} == gate_fields)
    again = _redecide(rec, stored, ev, GateConfig(**gate_fields), v)
    _same_as_recorded(v, rec, stored, again)
    return v


def _stored_result(rec: AuditRecord, stored, ev: Path, name: str, kind: str):
    """A model's result rebuilt from its evidence: its stored predictions (and selection-split predictions), the
    metrics recomputed from them, the costs the decision recorded."""
    from tunegate import metrics
    from tunegate.records import EvalResult, Prediction, Selection
    from tunegate.tables import SELECTION_SUFFIX

    def read(rel: str):
        preds = [Prediction.model_validate_json(ln) for ln in (ev / rel).read_text().splitlines() if ln.strip()]
        return preds, metrics.compute(rec.task, [p.prediction for p in preds], [p.reference for p in preds])[0]

    stem = f"predictions/{name.replace(':', '_')}"
    preds, values = read(f"{stem}.jsonl")
    selection = None
    if f"{stem}{SELECTION_SUFFIX}" in rec.evidence:
        sel_preds, sel_values = read(f"{stem}{SELECTION_SUFFIX}")
        selection = Selection(metrics=sel_values, predictions=sel_preds, n=len(sel_preds))
    cost = stored.costs.get(name, {})
    return EvalResult(
        name=name,
        kind=kind,
        metrics=values,
        predictions=preds,
        n=len(preds),
        prompt_tokens_per_request=cost.get("prompt_tokens_per_request", 0.0),
        latency_ms_per_request=cost.get("latency_ms_per_request", 0.0),
        p95_latency_ms=cost.get("p95_latency_ms"),
        examples_per_s=0.0,
        seconds=0.0,
        batch_size=0,
        selection=selection,
    )


def _redecide(rec: AuditRecord, stored, ev: Path, gate, v: Verification):
    """The decision again, from the evidence alone; each model's recorded metric checked against its predictions."""
    from tunegate.decision import decide
    from tunegate.seeds import choose_seed

    metric = rec.gate_metric
    baselines = [_stored_result(rec, stored, ev, name, "baseline") for name in stored.baselines]
    tuned_name = f"tuned:{rec.method}"
    tuned = _stored_result(rec, stored, ev, tuned_name, "tuned")
    seeds = None
    if stored.seeds:
        seeds = []
        for x in stored.seeds["per_seed"]:
            r = _stored_result(rec, stored, ev, x["name"], "tuned")
            seeds.append(r.model_copy(update={"details": {"seed": x["seed"]}}))
        tuned.details["seed"] = choose_seed(seeds, metric)[0].details["seed"]  # what the rule picks from the evidence
    production = _stored_result(rec, stored, ev, stored.production, "production") if stored.production else None
    guards = _rejudged_guards(rec, stored, ev, v)
    for r in [*baselines, tuned, *([production] if production else [])]:
        recorded = stored.baselines.get(r.name) or (stored.tuned if r.name == tuned_name else None)
        if recorded is not None:
            v.add(
                f"{metric} of {r.name} recomputed from its predictions",
                abs(recorded[metric] - r.metrics[metric]) < 1e-9,
                f"recorded {recorded[metric]:.6f}, recomputed {r.metrics[metric]:.6f}",
            )
    return decide(
        task=rec.task,
        metric=metric,
        gate=gate,
        baselines=baselines,
        tuned=tuned,
        production=production,
        cost_model=stored.cost_model,
        requests_per_month=int(stored.prices.get("requests_per_month") or 0),
        correct_selection=bool(stored.selection),  # records before the selection rule were decided without it
        seeds=seeds,
        guards=guards,
    )


def _rejudged_guards(rec: AuditRecord, stored, ev: Path, v: Verification):
    """Each guard's verdict recomputed from guards.json (per-row values, declared settings, the gate's alpha and
    seed), checked against the decision's; None for records from before the guards."""
    from tunegate.guards.checking import ROWS_FILE, rejudge

    if ROWS_FILE not in rec.evidence:
        return None
    again = rejudge(json.loads((ev / ROWS_FILE).read_text()))
    recorded = {g.guard: g for g in stored.guards}
    for g in again:
        was = recorded.get(g.guard)
        same = was is not None and was.status == g.status and was.settings == g.settings
        same = same and [(m.name, round(m.delta, 9), m.passed) for m in was.measures] == [
            (m.name, round(m.delta, 9), m.passed) for m in g.measures
        ]
        v.add(
            f"guard {g.guard} recomputed from its rows",
            same,
            f"recorded {was.status if was else 'nothing'}, recomputed {g.status}",
        )
    return again


def _same_as_recorded(v: Verification, rec: AuditRecord, stored, again) -> None:
    """The recomputed decision against the record: chosen seed, selection split, best baseline, decision, numbers."""
    if stored.seeds:
        v.add(
            "chosen seed",
            again.seeds["chosen"] == stored.seeds["chosen"],
            f"recorded {stored.seeds['chosen']}, recomputed {again.seeds['chosen']}",
        )
    if stored.selection:
        v.add(
            "selection split",
            again.selection.get("split") == stored.selection.get("split"),
            f"recorded {stored.selection.get('split')}, recomputed {again.selection.get('split')}",
        )
    v.add(
        "best baseline",
        again.best_baseline == rec.best_baseline,
        f"recorded {rec.best_baseline}, recomputed {again.best_baseline}",
    )
    v.add("decision", again.decision == rec.decision, f"recorded {rec.decision}, recomputed {again.decision}")
    for name, a, b in [
        ("delta", rec.delta, again.delta),
        ("CI low", rec.ci_low, again.ci_low),
        ("CI high", rec.ci_high, again.ci_high),
        ("McNemar p", rec.mcnemar_p, again.comparisons[0].mcnemar_p),
    ]:
        same = (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-9)
        v.add(name, same, f"recorded {a}, recomputed {b}")


def cross_checks(rec: AuditRecord, stored: Decision, ev: Path) -> list[tuple[str, bool, str]]:
    """The record's own statements against its (hash-checked) evidence: base model (config.yaml), decision,
    headline, best baseline, data hash and training cost (decision.json)."""
    import yaml

    out = []

    def same(name: str, recorded, evidence, where: str) -> None:
        if isinstance(recorded, float) and isinstance(evidence, float):
            ok = abs(recorded - evidence) <= 1e-9 * max(1.0, abs(evidence))
        else:
            ok = recorded == evidence
        out.append((f"recorded {name} = {where}", ok, f"recorded {recorded!r}, evidence {evidence!r}"))

    if (ev / "config.yaml").is_file():
        try:
            model = (yaml.safe_load((ev / "config.yaml").read_text()) or {}).get("model")
        except yaml.YAMLError:
            model = None
        same("base model", rec.base_model, model, "config.yaml's model")
    same("decision", rec.decision, stored.decision, "decision.json")
    same("headline", rec.headline, stored.headline, "decision.json")
    same("best baseline", rec.best_baseline, stored.best_baseline, "decision.json")
    same("data hash", rec.data_hash, stored.provenance.get("data_hash", rec.data_hash), "decision.json")
    tuned = next((c for c in stored.cost_model if c.kind == "tuned"), None)
    if tuned is not None:
        same("training cost (USD)", (rec.cost or {}).get("train_usd"), tuned.one_off_usd, "decision.json")
        same("training seconds", (rec.cost or {}).get("train_seconds"), tuned.one_off_seconds, "decision.json")
        same("tuned monthly cost", (rec.cost or {}).get("tuned_monthly_usd"), tuned.monthly_usd, "decision.json")
    return out
