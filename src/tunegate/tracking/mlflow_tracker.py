"""The ``mlflow`` backend: each tunegate run is an MLflow run, and the registry's aliases are mirrored into MLflow's
model registry.

* **The run** (``tracking.mlflow: {uri, experiment}``): created on the run's first stage, named by the run id, its
  MLflow id kept in ``<run folder>/mlflow.json`` (so every stage, in whichever process or Dask worker it runs, logs
  to the same run). Logged: the resolved config as params (and ``config.yaml``), every rung's and candidate's metrics
  as they finish, then from the decision each one's metric with its CI, the delta to the best rung and the costs,
  the declared gate and guards (params) with the guards' verdicts (tags), the decision (tags and metrics); each
  training step's loss, live (``train.<method>.loss`` by step); at the end the report, the plots and decision.json
  as artifacts, and the run's status (FINISHED, or FAILED for a failed run).
* **The registry mirror** (``mirror_registry: true``, the default): after each deploy, and after every alias
  move by ``tunegate registry promote|rollback`` or ``serve``'s ``rollback_if`` (``promotion`` calls
  :func:`sync_aliases` through the registry's ``mirrors.json``), MLflow's registered model ``<model name>`` gets a
  model version for each version an alias points at (its files as artifacts of the run that trained it, tagged
  ``tunegate.version``) and the same aliases. tunegate's registry stays the source of truth: the mirror follows it.

Any MLflow failure is a warning (``tracking._safely``); after one, the backend is off for the rest of the process
(a server that is down costs one timeout, not one per metric).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import yaml

from tunegate.tracking.base import Tracker
from tunegate.tracking.mlflow_settings import MlflowSettings

log = logging.getLogger("tunegate.tracking")
RUN_FILE = "mlflow.json"  # in the run folder: the MLflow run id
MIRRORS = "mirrors.json"  # in the registry root: the MLflow registries its aliases are mirrored to
_DOWN: set[str] = set()  # tracking URIs that failed in this process: off for the rest of it


def _key(text: str) -> str:
    """An MLflow metric/param key: letters, digits, _ - . space / (others become _)."""
    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", text)[:250]


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flat(f"{prefix}.{v.get('name', i)}", v, out)
    else:
        out[prefix] = value
    return out


def _unreachable() -> tuple[type[BaseException], ...]:
    """What an MLflow server or store that is down or refusing raises (a bug of ours is not one of them)."""
    import requests
    from mlflow.exceptions import MlflowException

    return (MlflowException, OSError, requests.RequestException)


def client(settings: MlflowSettings):
    """An MLflow client for ``settings.uri`` that fails fast: no HTTP retries, the configured timeout."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.timeout_s)))
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.uri, registry_uri=settings.uri)


def experiment_id(c, settings: MlflowSettings) -> str:
    """The experiment's id, created when missing; with a SQLite store its artifacts go beside the database
    (``mlartifacts/``), not into ./mlruns of whichever directory the run started in."""
    exp = c.get_experiment_by_name(settings.experiment)
    if exp is not None:
        return exp.experiment_id
    location = None
    if settings.uri.startswith("sqlite:///"):
        location = (Path(settings.uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return c.create_experiment(settings.experiment, artifact_location=location)


class Mlflow(Tracker):
    """One tunegate run as one MLflow run (see the module's docstring)."""

    def __init__(self, settings: MlflowSettings, run: Any):
        super().__init__(settings, run)
        self._client = None

    # ---- the MLflow run of this tunegate run

    @property
    def client(self):
        if self.settings.uri in _DOWN:
            raise RuntimeError(f"MLflow at {self.settings.uri} failed earlier in this process; not tried again")
        if self._client is None:
            self._client = client(self.settings)
        return self._client

    def _guarded(self, call):
        try:
            return call()
        except _unreachable():
            _DOWN.add(self.settings.uri)  # the server or store failed: not tried again in this process
            raise

    def run_id(self) -> str:
        """The MLflow run of this tunegate run: read from the run folder, or created (once, under a lock)."""
        from tunegate.registry import file_lock

        folder = Path(self.run.run_dir)
        path = folder / RUN_FILE
        with file_lock(folder / f".{RUN_FILE}.lock", what="the run's MLflow run id"):
            if path.is_file():
                return json.loads(path.read_text())["run_id"]
            return self._guarded(lambda: self._create(folder, path))

    def _create(self, folder: Path, path: Path) -> str:
        c = self.client
        exp_id = experiment_id(c, self.settings)
        tags = {"tunegate.run_id": self.run.run_id, "tunegate.model": self.run.model_path}
        mlrun = c.create_run(exp_id, run_name=self.run.run_id, tags=tags)
        rid = mlrun.info.run_id
        config = folder / "config.yaml"
        if config.is_file():
            flat = _flat("", yaml.safe_load(config.read_text()) or {}, {})
            self._params(rid, {k: v for k, v in flat.items() if v is not None})
            c.log_artifact(rid, str(config))
        path.write_text(json.dumps({"run_id": rid, "experiment_id": exp_id, "uri": self.settings.uri}))
        return rid

    def _params(self, rid: str, values: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(_key(k), str(v)[:6000]) for k, v in values.items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(rid, params=params[i : i + 100])

    def _metrics(self, rid: str, values: dict[str, Any], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        ms = [
            Metric(_key(k), float(v), now, step)
            for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
        ]
        for i in range(0, len(ms), 1000):
            self.client.log_batch(rid, metrics=ms[i : i + 1000])

    def _tags(self, rid: str, values: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(rid, tags=[RunTag(_key(k), str(v)[:5000]) for k, v in values.items() if v is not None])

    # ---- the tracking hooks

    def log_step(self, method: str, step: int, values: dict[str, float]) -> None:
        rid = self.run_id()
        self._guarded(lambda: self._metrics(rid, {f"train.{method}.{k}": v for k, v in values.items()}, step=step))

    def log_stage(self, stage: str, result: Any) -> None:
        rid = self.run_id()
        self._guarded(lambda: self._stage(rid, stage, result))

    def _stage(self, rid: str, stage: str, result: Any) -> None:
        kind = stage.split("[", 1)[0]
        if kind in ("evaluate_baseline", "evaluate_tuned") and result is not None:
            self._metrics(rid, {f"{result.name}.{k}": v for k, v in result.metrics.items()})
            cost = {"latency_ms": result.latency_ms_per_request, "prompt_tokens": result.prompt_tokens_per_request}
            self._metrics(rid, {f"{result.name}.{k}": v for k, v in cost.items()})
        elif kind == "tune" and result is not None:
            keep = ("train_seconds", "tokens_per_s", "trainable_params", "n_steps", "peak_rss_mb")
            self._metrics(rid, {f"train.{result.method}.{k}": getattr(result, k) for k in keep})
        elif kind == "compare" and result is not None:
            self._decision(rid, result)
        elif kind == "deploy" and result is not None:
            self._tags(rid, {"deploy.registered_version": result.registered_version})
            self._tags(rid, {"deploy.production_moved": result.production_moved, "deploy.message": result.message})
            if self.settings.mirror_registry:
                remember_mirror(self.settings, Path(self.run.run_dir))
        elif kind == "compare_methods" and result is not None:
            for row in result.rows:
                values = {k: getattr(row, k) for k in ("metric", "ci_low", "ci_high", "delta", "train_seconds")}
                self._metrics(rid, {f"{row.name}.{k}": v for k, v in values.items()})
            self._end(rid, "FINISHED", [result.report_md, result.chart_png])
        elif kind == "summarize_ladder" and result is not None:  # `tunegate baselines`: the ladder is the run
            for row in result["rows"]:
                values = {
                    "ci_low": row["ci_low"],
                    "ci_high": row["ci_high"],
                    "latency_ms": row["latency_ms_per_request"],
                }
                self._metrics(rid, {f"{row['name']}.{result['gate_metric']}": row["metric"]})
                self._metrics(rid, {f"{row['name']}.{result['gate_metric']}.{k}": v for k, v in values.items()})
            self._end(rid, "FINISHED", [result["report_md"]])
        elif kind == "learning_curve" and result is not None:  # `tunegate forecast` (or a rejected run's forecast)
            for point in result.points:
                self._metrics(rid, {f"forecast.{result.metric}": point.get("metric")}, step=int(point.get("rows", 0)))
            self._metrics(rid, {"forecast.rows_needed": result.rows_needed, "forecast.cost_needed": result.cost_needed})
            self._tags(rid, {"forecast.verdict": result.verdict, "forecast.summary": result.summary})
            self._end(rid, "FINISHED", [result.report_md, result.plot_png])
        elif kind == "record_audit" and result is not None:
            self._tags(rid, {"tunegate.status": result.status, "tunegate.trigger": result.trigger})
            self._end(rid, "FAILED" if result.status == "failed" else "FINISHED", [])

    def _decision(self, rid: str, d) -> None:
        metric = d.gate_metric
        for row in d.models:  # every rung and candidate: its metric with CI, delta to the best rung, costs
            values = {metric: row.metric, f"{metric}.ci_low": row.ci_low, f"{metric}.ci_high": row.ci_high}
            values |= {"delta": row.delta, "delta.ci_low": row.delta_ci_low, "delta.ci_high": row.delta_ci_high}
            values |= {"per_request_usd": row.per_request_usd, "monthly_usd": row.monthly_usd}
            values |= {"one_off_usd": row.one_off_usd, "latency_ms": row.latency_ms}
            self._metrics(rid, {f"{row.name}.{k}": v for k, v in values.items()})
        self._metrics(rid, {"decision.delta": d.delta, "decision.ci_low": d.ci_low, "decision.ci_high": d.ci_high})
        for c in d.comparisons:
            self._metrics(rid, {f"vs_{c.role}.mcnemar_p": c.mcnemar_p, f"vs_{c.role}.mde": c.mde})
        declared = _flat("gate", {k: v for k, v in d.gate.items() if not isinstance(v, (dict, list))}, {})
        for g in d.guards:
            declared |= _flat(f"guards.{g.guard}", g.settings, {})
        self._params(rid, {k: v for k, v in declared.items() if v is not None})
        verdicts = {f"guard.{g.guard}": g.status for g in d.guards}
        self._tags(rid, {"decision": d.decision, "decision.summary": d.summary, "best_baseline": d.best_baseline})
        self._tags(rid, {"decision.headline": d.headline, "gate_metric": metric, **verdicts})

    def _end(self, rid: str, status: str, extra: list[str | None]) -> None:
        """The run's report, plots and decision as artifacts, then its status."""
        folder = Path(self.run.run_dir)
        wanted = ["report.md", "report.html", "decision.json", "ladder.md", "compare.md", "forecast.md"]
        files = [folder / f for f in wanted] + sorted(folder.glob("*.png")) + [Path(x) for x in extra if x]
        for f in dict.fromkeys(files):
            if f.is_file():
                self.client.log_artifact(rid, str(f), "report")
        if (folder / "plots").is_dir():  # the report's figures
            self.client.log_artifacts(rid, str(folder / "plots"), "report/plots")
        self.client.set_terminated(rid, status)


# ---- the registry mirror


def remember_mirror(settings: MlflowSettings, run_dir: Path) -> None:
    """Record in the run's registry that its aliases are mirrored to this MLflow (``mirrors.json``), so that a later
    ``tunegate registry rollback`` (which reads no config) moves MLflow's aliases too; then sync them now."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    registry = Path(config.get("registry", {}).get("path", "registry"))
    name = config.get("registry", {}).get("model_name")
    if not registry.is_dir() or not name:
        return
    from tunegate.registry import atomic_write_text

    mirrors_file = registry / MIRRORS
    mirrors = json.loads(mirrors_file.read_text()) if mirrors_file.is_file() else {}
    entry = {"uri": _absolute(settings.uri), "experiment": settings.experiment, "timeout_s": settings.timeout_s}
    if mirrors.get("mlflow") != entry:
        mirrors["mlflow"] = entry
        atomic_write_text(mirrors_file, json.dumps(mirrors, indent=2))
    sync_aliases(registry, name)


def _absolute(uri: str) -> str:
    """A file-store folder or SQLite path made absolute (a rollback may run from another directory)."""
    if "://" not in uri:
        return str(Path(uri).resolve())
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


def sync_aliases(registry_root: Path, name: str) -> None:
    """Make the MLflow registered model ``name`` carry the aliases tunegate's registry has now (each target a model
    version tagged with its tunegate version, created from the version's files when missing). Nothing when the
    registry mirrors nowhere; an MLflow failure raises (the caller warns)."""
    mirrors_file = Path(registry_root) / MIRRORS
    if not mirrors_file.is_file() or "mlflow" not in json.loads(mirrors_file.read_text()):
        return
    from tunegate.registry import Registry

    entry = json.loads(mirrors_file.read_text())["mlflow"]
    settings = MlflowSettings(**entry)
    if settings.uri in _DOWN:
        return
    reg = Registry(registry_root)
    aliases = {k: v for k, v in reg.aliases(name).items() if not k.startswith("_")}
    c = client(settings)
    try:
        _mirror(c, settings, reg, name, aliases)
    except _unreachable():
        _DOWN.add(settings.uri)
        raise


def _mirror(c, settings: MlflowSettings, reg, name: str, aliases: dict[str, int]) -> None:
    from mlflow.exceptions import MlflowException

    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, tags={"tunegate.registry": str(Path(reg.root).resolve())})
    ours = [
        mv
        for mv in c.search_model_versions(f"name = '{name}'")
        if mv.tags.get("tunegate.registry") == str(Path(reg.root).resolve())
    ]
    known = {
        mv.tags.get("tunegate.version"): mv for mv in ours
    }  # this registry's versions (another may share the name)
    current = {}
    for alias, version in aliases.items():
        mv = known.get(str(version))
        if mv is None:
            mv = known[str(version)] = _register_version(c, settings, reg, name, version)
        try:
            current[alias] = c.get_model_version_by_alias(name, alias).version
        except MlflowException:
            current[alias] = None
        if current[alias] != mv.version:
            c.set_registered_model_alias(name, alias, mv.version)
            log.info("MLflow: %s@%s -> model version %s (tunegate v%s)", name, alias, mv.version, version)


def _register_version(c, settings: MlflowSettings, reg, name: str, version: int):
    """A model version for tunegate's ``name`` v``version``: its files logged to the MLflow run that trained it
    (found by the ``tunegate.run_id`` tag; a run of its own when there is none) and registered from there."""
    info = reg.get(name, version)
    run_id = info.meta.get("run_id")
    exp_id = experiment_id(c, settings)
    found = c.search_runs([exp_id], filter_string=f"tags.`tunegate.run_id` = '{run_id}'", max_results=1)
    if found:
        mlrun = found[0]
    else:
        mlrun = c.create_run(exp_id, run_name=f"{name} v{version} (registry mirror)", tags={"tunegate.run_id": run_id})
        c.set_terminated(mlrun.info.run_id, "FINISHED")
    where = f"registry/{name}/v{version}"
    c.log_artifacts(mlrun.info.run_id, str(info.path), where)
    tags = {"tunegate.version": str(version), "tunegate.method": info.meta.get("method", "")}
    tags["tunegate.registry"] = str(Path(reg.root).resolve())
    tags |= {"tunegate.decision": info.meta.get("decision", ""), "tunegate.run_id": run_id or ""}
    source = f"{mlrun.info.artifact_uri}/{where}"
    return c.create_model_version(name, source, run_id=mlrun.info.run_id, tags=tags, await_creation_for=0)
