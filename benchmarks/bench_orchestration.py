"""The ladder and `tunegate compare`, sequential vs on a local Dask cluster: wall time, same results.

Runs `tunegate baselines` (every rung) and `tunegate compare` (two methods, guards off) on the real SmolLM2 and
a slice of SST-2 twice each: `orchestration.task_runner: sequential` (the reference: every task in the flow's
process, torch on all cores) and `dask` with WORKERS worker processes x THREADS torch threads. Each run gets a
result storage of its own (nothing cached from the other) and an embedded Prefect server. Prints the wall times
side by side and checks both runners produced the same per-rung metrics.

    python benchmarks/bench_orchestration.py                       # 2 workers x 1 thread (this 2-core machine)
    python benchmarks/bench_orchestration.py --workers 4 --threads 2 --eval-rows 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "sst2" / "config.yaml"


def run(command: str, sets: list[str], env: dict, workdir: Path) -> tuple[float, Path]:
    args = [sys.executable, "-m", "tunegate.cli", command, str(CONFIG)]
    for s in sets:
        args += ["--set", s]
    t0 = time.perf_counter()
    out = subprocess.run(args, env=env, cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{command} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    runs = sorted((workdir / "runs").iterdir())
    return seconds, runs[-1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--eval-rows", type=int, default=100)
    ap.add_argument("--train-rows", type=int, default=160)
    args = ap.parse_args(argv)

    common = [
        f"data.max_eval_rows={args.eval_rows}",
        f"data.max_train_rows={args.train_rows}",
        "guards=false",
        "compare=[{name: lora, r: 8, alpha: 16, epochs: 1, batch_size: 16, micro_batch_size: 16, max_length: 128},"
        " {name: linear_probe, max_length: 128}]",
    ]
    runners = {
        "sequential": ["orchestration.task_runner=sequential"],
        f"dask {args.workers}x{args.threads}": [
            "orchestration.task_runner=dask",
            f"orchestration.workers={args.workers}",
            f"orchestration.threads_per_worker={args.threads}",
        ],
    }
    results: dict[str, dict] = {}
    for name, sets in runners.items():
        work = Path(tempfile.mkdtemp(prefix="bench-orch-"))
        env = {**os.environ, "PREFECT_HOME": str(work / "prefect"), "PREFECT_LOCAL_STORAGE_PATH": str(work / "store")}
        env.pop("PREFECT_API_URL", None)  # an embedded server per command, as a user's first run
        place = [f"output.dir={work / 'runs'}", f"registry.path={work / 'registry'}"]
        print(f"[{name}] tunegate baselines ...", flush=True)
        ladder_s, ladder_dir = run("baselines", [*common, *sets, *place], env, work)
        print(f"[{name}] tunegate compare ...", flush=True)
        compare_s, compare_dir = run("compare", [*common, *sets, *place], env, work)
        rows = json.loads((ladder_dir / "ladder.json").read_text())["rows"]
        stages = {
            d: [json.loads(x) for x in (d / "timings.jsonl").read_text().splitlines()]
            for d in (ladder_dir, compare_dir)
        }
        table = json.loads((compare_dir / "compare.json").read_text())["rows"]
        results[name] = {
            "ladder_s": ladder_s,
            "compare_s": compare_s,
            "ladder_s_tasks": sum(x["seconds"] for x in stages[ladder_dir]),  # the work, whichever process did it
            "compare_s_tasks": sum(x["seconds"] for x in stages[compare_dir]),
            "rerun": sum(x["stage"].startswith("evaluate_baseline") for x in stages[compare_dir]),
            "ladder": {r["name"]: round(r["metric"], 4) for r in rows},
            "compare": {r["name"]: round(r["metric"], 4) if r.get("metric") is not None else None for r in table},
        }
    (a, ra), (b, rb) = results.items()
    cpus = os.cpu_count()
    print(f"\nSST-2 slice ({args.eval_rows} eval, {args.train_rows} train rows), SmolLM2-135M, {cpus} CPUs")
    print(f"| | {a} | {b} | ratio |\n|---|---|---|---|")
    for what, key in (("ladder (tunegate baselines)", "ladder_s"), ("compare (2 methods)", "compare_s")):
        busy = f" (tasks: {ra[key + '_tasks']:.0f} s / {rb[key + '_tasks']:.0f} s of work)"
        print(f"| {what}{busy} | {ra[key]:.0f} s | {rb[key]:.0f} s | {rb[key] / ra[key]:.2f}x |")
    same_ladder = ra["ladder"] == rb["ladder"]
    same_compare = ra["compare"] == rb["compare"]
    print(f"\nsame rung metrics: {same_ladder}; same compare table metrics: {same_compare}")
    print("rungs re-run by compare (0: all from the ladder's cache):", ra["rerun"], "/", rb["rerun"])
    for name, r in results.items():
        print(f"  {name}: ladder {r['ladder']}\n  {' ' * len(name)}  compare {r['compare']}")


if __name__ == "__main__":
    main()
