#!/usr/bin/env bash
# Everything of "Running on a cluster" on one machine, with real servers on loopback (the issue-35 evidence):
# a Prefect server, an `mlflow server` (SQLite), a second process work pool `tunegate-gpu` with its worker and the
# `tune-gpu` deployment. SmolLM2 on an SST-2 slice: run 1 puts the ladder on a local Dask cluster (2 workers x 1
# thread) and its training on the other pool (orchestration.tune_on), logging to MLflow; run 2 (sequential) is a
# second version; then a rollback by hand. Prints what MLflow's own client sees. About 10 minutes on 2 cores.
#   bash deployments/demo_cluster.sh            (from the repository root, after `make setup`)
set -u
cd "$(dirname "$0")/.."
R=${R:-/tmp/tunegate-cluster-demo}
rm -rf "$R" && mkdir -p "$R"
export PREFECT_HOME=$R/prefect HF_HUB_OFFLINE=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
PP=${PREFECT_PORT:-4299} MP=${MLFLOW_PORT:-5099}
.venv/bin/prefect server start --host 127.0.0.1 --port "$PP" > "$R/prefect-server.log" 2>&1 &
.venv/bin/mlflow server --backend-store-uri "sqlite:///$R/mlflow.db" --artifacts-destination "$R/mlartifacts" \
  --host 127.0.0.1 --port "$MP" --workers 1 > "$R/mlflow-server.log" 2>&1 &
trap 'kill $(jobs -p) 2>/dev/null; sleep 3; kill -9 $(jobs -p) 2>/dev/null' EXIT  # the worker can outlive a TERM
export PREFECT_API_URL=http://127.0.0.1:$PP/api
for _ in $(seq 90); do
  curl -sf "$PREFECT_API_URL/health" >/dev/null && curl -sf "http://127.0.0.1:$MP/health" >/dev/null && break
  sleep 1
done
.venv/bin/prefect work-pool create tunegate-gpu --type process > /dev/null
.venv/bin/prefect deploy --prefect-file deployments/prefect.yaml --name tune-gpu --no-prompt > "$R/deploy.log" 2>&1
PREFECT_WORKER_QUERY_SECONDS=2 .venv/bin/prefect worker start --pool tunegate-gpu > "$R/gpu-worker.log" 2>&1 &
SETS=(--set data.max_train_rows=160 --set data.max_eval_rows=100 --set guards=false
      --set "output.dir=$R/runs" --set "registry.path=$R/registry"
      --set "tracking.mlflow.uri=http://127.0.0.1:$MP" --set tracking.mlflow.experiment=sst2-demo)
echo "run 1: the ladder on Dask, training on the tunegate-gpu pool ..."
.venv/bin/tunegate run examples/sst2/config.yaml "${SETS[@]}" --set orchestration.task_runner=dask \
  --set orchestration.tune_on=tunegate-tune/tune-gpu > "$R/run1.log" 2>&1 || { tail -30 "$R/run1.log"; exit 1; }
grep -E "PROMOTED" "$R/run1.log" | tail -1
echo "run 2: a second version (sequential, another seed) ..."
.venv/bin/tunegate run examples/sst2/config.yaml "${SETS[@]}" --set method.seed=1 --set gate.min_gain=-1 \
  > "$R/run2.log" 2>&1 || { tail -30 "$R/run2.log"; exit 1; }
grep -E "PROMOTED" "$R/run2.log" | tail -1
.venv/bin/tunegate registry rollback sst2-sentiment --registry "$R/registry" --reason "demo"
MLFLOW_URI=http://127.0.0.1:$MP .venv/bin/python - <<'PY'
import os
from mlflow import MlflowClient
uri = os.environ["MLFLOW_URI"]
c = MlflowClient(uri, registry_uri=uri)
exp = c.get_experiment_by_name("sst2-demo")
for r in sorted(c.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time):
    m = r.data.metrics
    print(f"MLflow run {r.info.run_name}: {r.info.status}, decision {r.data.tags.get('decision')}, "
          f"{len(r.data.params)} params, {len(m)} metrics")
    print("  ", {k: round(v, 3) for k, v in sorted(m.items()) if k.endswith((".accuracy", "ci_low", "ci_high"))})
    loss = c.get_metric_history(r.info.run_id, "train.lora.loss")
    print(f"   train.lora.loss: {len(loss)} steps, {loss[0].value:.3f} -> {loss[-1].value:.3f}")
    print("   artifacts:", [a.path for a in c.list_artifacts(r.info.run_id, "report")])
for mv in sorted(c.search_model_versions("name = 'sst2-sentiment'"), key=lambda v: int(v.version)):
    print(f"model version {mv.version}: tunegate v{mv.tags.get('tunegate.version')}, source {mv.source}")
prod = c.get_model_version_by_alias("sst2-sentiment", "production")
print("production ->", f"model version {prod.version} (tunegate v{prod.tags['tunegate.version']})")
PY
