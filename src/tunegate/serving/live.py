"""Live traffic in ``tunegate serve``: canary routing, the shadow, the request log, feedback, and the automatic
rollback (``serve.rollback_if``).

* A **canary** (``--canary NAME@REF:0.1``) answers that share of the requests addressed to NAME's production
  slot; the answer says which version gave it.
* A **shadow** (``--shadow NAME@REF``) answers every request addressed to NAME's production slot too, on the same
  inference thread right behind the champion (in the same forward when they share a base); its answer is logged,
  never returned.
* Every answered input is one line of the request log (``traffic.log``); ``POST /v1/feedback`` records the truth
  for a logged id. With ``serve.rollback_if``, each feedback on the production version updates its live metric's
  confidence sequence; once the declared regression is certain, production is rolled back (audited, trigger
  ``tunegate serve rollback_if``) and the slot reloads.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tunegate import stats
from tunegate.config.serve import ServeConfig
from tunegate.errors import TunegateError
from tunegate.problems import task_type
from tunegate.registry import PRODUCTION, Registry
from tunegate.serving.pool import ApiError, ModelPool, Slot
from tunegate.traffic.log import RequestLog, read_requests, traffic_dir

log = logging.getLogger(__name__)


def parse_canary(text: str) -> tuple[str, float]:
    """``NAME@REF:SHARE`` -> (ref, share in (0, 1))."""
    ref, sep, share = text.rpartition(":")
    try:
        value = float(share)
    except ValueError:
        value = -1.0
    if not sep or not ref or not 0.0 < value < 1.0:
        raise TunegateError(f"--canary {text!r}: write NAME@REF:SHARE with 0 < SHARE < 1, e.g. sst2@4:0.1")
    return ref, value


class Traffic:
    """The routing, logging and feedback of one server (``pool``'s slots), configured by ``serve``."""

    def __init__(
        self,
        pool: ModelPool,
        serve: ServeConfig,
        *,
        shadows: dict[str, str] | None = None,
        canaries: dict[str, tuple[str, float]] | None = None,
        seed: int | None = None,
    ):
        self.pool, self.serve = pool, serve
        self.shadows = shadows or {}  # champion slot ref -> shadow slot ref
        self.canaries = canaries or {}  # champion slot ref -> (canary slot ref, share)
        self.rng = random.Random(seed)
        self.logs: dict[str, RequestLog] = {}
        self.lock = threading.Lock()
        self.recent: dict[str, tuple[str, str, str, Any]] = {}  # id -> (name, version, endpoint, answer)
        self.scores: dict[tuple[str, str], dict[str, float]] = {}  # (name, version) -> {request id: live score}
        self.rolled_back: list[dict[str, Any]] = []
        self.stuck: set[str] = set()  # versions whose rollback failed (nothing to roll back to): not retried

    # ---- routing

    def route(self, slot: Slot) -> tuple[Slot, str]:
        """Who answers a request addressed to ``slot``: its canary for the declared share, else the slot."""
        if slot.ref in self.canaries:
            ref, share = self.canaries[slot.ref]
            if self.rng.random() < share:
                return self.pool.slots[ref], "canary"
            return slot, "production"
        if slot.ref in self.shadows:
            return slot, "production"
        role = "production" if slot.ref.endswith(f"@{PRODUCTION}") else "direct"
        return slot, role

    def shadow_of(self, slot: Slot, route: str) -> Slot | None:
        ref = self.shadows.get(slot.ref)
        return self.pool.slots[ref] if ref and route == "production" else None

    # ---- the log

    def _log(self, name: str) -> RequestLog | None:
        if not self.serve.log:
            return None
        with self.lock:
            if name not in self.logs:
                folder = traffic_dir(self.pool.registry_root, name, self.serve.log_dir)
                self.logs[name] = RequestLog(
                    folder, log_inputs=self.serve.log_inputs, rotate_mb=self.serve.log_rotate_mb
                )
            return self.logs[name]

    @staticmethod
    def new_id(prefix: str = "req") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:20]}"

    def record(
        self,
        *,
        rid: str,
        requested: Slot,
        answered: Slot,
        route: str,
        endpoint: str,
        text: str,
        result: dict[str, Any],
        latency_ms: float,
        shadow: dict[str, Any] | None = None,
    ) -> None:
        """One answered input: remembered for feedback, and a line of the log."""
        v = answered.predictor.version
        name, version = v.name, answered.version_ref
        answer, confidence = _answer(result)
        with self.lock:
            self.recent[rid] = (name, version, endpoint, answer)
        target = self._log(name)
        if target is not None:
            target.request(
                text=text,
                id=rid,
                model=name,
                ref=requested.ref,
                version=version,
                route=route,
                endpoint=endpoint,
                answer=answer,
                confidence=confidence,
                latency_ms=latency_ms,
                shadow=shadow,
            )

    def shadow_record(self, shadow: Slot, result: dict[str, Any], latency_ms: float) -> dict[str, Any]:
        answer, confidence = _answer(result)
        return {"version": shadow.version_ref, "answer": answer, "confidence": confidence, "latency_ms": latency_ms}

    # ---- feedback and the automatic rollback

    def _find(self, rid: str) -> tuple[str, str, str, Any] | None:
        with self.lock:
            if rid in self.recent:
                return self.recent[rid]
        for name in {s.predictor.version.name for s in self.pool.slots.values()}:  # logged before a restart
            for r in read_requests(traffic_dir(self.pool.registry_root, name, self.serve.log_dir)):
                if r.get("id") == rid:
                    return r["model"], r["version"], r.get("endpoint", "predict"), r.get("answer")
        return None

    def feedback(self, rid: str, *, label: Any = None, reference: Any = None) -> dict[str, Any]:
        found = self._find(rid)
        if found is None:
            raise ApiError(
                404, "unknown_request", f"no logged request has id {rid!r} (ids come from the answers)", "id"
            )
        name, version, endpoint, answer = found
        slot = next(s for s in self.pool.slots.values() if s.predictor.version.name == name)
        kind = task_type(slot.predictor.meta["task"]).answers
        truth = label if label is not None else reference
        if kind == "labels":
            labels = list(slot.predictor.spec.labels)
            if label is None or str(label) not in labels:
                raise ApiError(
                    400, "bad_label", f"feedback for {name}: give label, one of {', '.join(labels)}", "label"
                )
        target = self._log(name)
        if target is not None:
            target.add_feedback(rid, label=label, reference=reference)
        out: dict[str, Any] = {"id": rid, "model": name, "version": version, "recorded": target is not None}
        if kind == "labels" and endpoint == "predict":  # a chat reply to a classifier is text, not its label
            with self.lock:
                self.scores.setdefault((name, version), {})[rid] = float(str(answer) == str(truth))  # latest wins
            out["rollback"] = self.check_rollback(name)
        return out

    def check_rollback(self, name: str) -> dict[str, Any] | None:
        """Roll production back when ``serve.rollback_if`` is met for the version production points at."""
        rule = self.serve.rollback_if
        if rule is None:
            return None
        reg = Registry(self.pool.registry_root)
        current = reg.aliases(name).get(PRODUCTION)
        if current is None:
            return None
        version = f"{name}@v{current}"
        if version in self.stuck:
            return None
        with self.lock:
            scores = list(self.scores.get((name, version), {}).values())
        if len(scores) < rule.min_feedback:
            return None
        # tightest around a few times the smallest sample the rule decides on: a regression is caught early
        planned = max(4 * rule.min_feedback, 100)
        cs = stats.confidence_sequence(scores, alpha=rule.alpha, bounds=(0.0, 1.0), planned_n=planned)
        if rule.below is not None:
            bar, what = rule.below, f"below {rule.below:.3f}"
        else:
            eval_value = float(reg.get(name, current).meta.get("metric") or 0.0)
            bar, what = eval_value - rule.drop, f"more than {rule.drop:.3f} below its eval {eval_value:.3f}"
        if cs.high >= bar:
            return None
        return self._roll_back(reg, name, current, cs, what, len(scores))

    def _roll_back(self, reg: Registry, name: str, current: int, cs, what: str, n: int) -> dict[str, Any]:
        from tunegate import promotion

        reason = (
            f"serve.rollback_if: live accuracy {cs.mean:.3f} (always-valid {1 - cs.alpha:.0%} interval "
            f"[{cs.low:.3f}, {cs.high:.3f}] on {n} requests with feedback) is {what}"
        )
        try:
            result = promotion.rollback(reg, name, reason=reason)
        except Exception as exc:  # noqa: BLE001 - nothing to roll back to: say so, keep serving
            log.warning("rollback_if met for %s@v%s but the rollback failed: %s", name, current, exc)
            self.stuck.add(f"{name}@v{current}")
            return {"rolled_back": False, "reason": reason, "error": str(exc)}
        details = {"live": {"value": cs.mean, "low": cs.low, "high": cs.high, "n": n, "alpha": cs.alpha}}
        promotion.audit_alias_move(
            reg,
            name,
            result,
            action="rollback",
            alias=PRODUCTION,
            reason=reason,
            trigger="tunegate serve rollback_if",
            details=details,
        )
        event = {
            "rolled_back": True,
            "from": f"v{current}",
            "to": f"v{reg.aliases(name)[PRODUCTION]}",
            "reason": reason,
        }
        self.rolled_back.append({**event, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        log.warning("rolled %s back: %s", name, reason)
        for slot in list(self.pool.slots.values()):
            if slot.ref == f"{name}@{PRODUCTION}":
                self.pool.reload(slot)
        return event

    def describe(self) -> dict[str, Any]:
        return {
            "shadows": self.shadows,
            "canaries": {k: {"ref": r, "share": s} for k, (r, s) in self.canaries.items()},
            "log": {n: str(lg.folder) for n, lg in self.logs.items()} if self.serve.log else None,
            "log_inputs": self.serve.log_inputs,
            "rollback_if": self.serve.rollback_if.model_dump() if self.serve.rollback_if else None,
            "rolled_back": self.rolled_back,
        }


def _answer(result: dict[str, Any]) -> tuple[Any, float | None]:
    """The logged answer of one result (a label and its probability, a number, or text)."""
    if "label" in result:
        return result["label"], float(result["probabilities"][result["label"]])
    if "value" in result:
        return result["value"], None
    return result.get("output", result.get("text")), None


def serve_settings(registry_root: Path, ref: str, config_path: Path | None) -> ServeConfig:
    """The ``serve:`` section: from ``--config`` when given, else from the config recorded with the version ``ref``
    points at (the run that registered it), else the defaults."""
    import yaml

    path = config_path
    if path is None:
        try:
            path = Registry(registry_root).resolve(ref).path / "config.yaml"
        except Exception:  # noqa: BLE001 - the pool reports a bad reference itself
            return ServeConfig()
    if not Path(path).exists():
        return ServeConfig()
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return ServeConfig(**(raw.get("serve") or {}))
