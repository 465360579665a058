"""tunegate's speed and memory on the real model, side by side with a plain peft loop.

Runs, in one go on this machine (each measurement in a fresh process, so peak RSS
compares fairly):
  1. each method (LoRA, QLoRA, prompt tuning, linear probe) on SST-2 rows: tunegate vs
     the peer script (../shared/reference/peer-loops/train_peft.py, linear_probe.py) with
     the peer's settings: train tokens/s (probe: feature examples/s), peak RSS, test accuracy;
  2. zero-shot label scoring: tunegate's scorer vs the peer's (examples/s);
  3. a quickstart `tunegate run` (embedded Prefect): wall time of each stage and the
     pipeline's overhead = whole run - model work (training + scoring forward passes).

Full setting (the peer's: 1,000 train rows, batch 16, full 872-row test) takes ~75 min on
2 cores for all four methods; --quick (320 rows, 200 test rows) ~30 min; --methods
picks a subset; --seeds K repeats each method's training on both sides with seeds
0..K-1 (the seed draws the training rows and the batches, on both sides) and reports
means and spreads: at 20 steps one seed's accuracy moves by several points. The kind of
machine (bf16 hardware or not) and the precision the tunegate side trained in are printed;
--dtypes float32,bfloat16 measures tunegate's side in each precision beside the same peer runs
(on a CPU with bf16 hardware: what float32-only machines get, and what bf16 adds).
Results are printed and written to benchmarks/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PEER = SHARED / "reference" / "peer-loops"
SST2 = SHARED / "data" / "sst2"
# the peer script and its result file for each method; QLoRA runs 20 steps on both sides (the peer's documented setting)
PEER_CMD = {
    "lora": ["train_peft.py", "--method", "lora"],
    "qlora": ["train_peft.py", "--method", "qlora"],
    "prompt_tuning": ["train_peft.py", "--method", "prompt"],
    "linear_probe": ["linear_probe.py"],
}
PEER_RESULT = {
    "lora": "lora.json",
    "qlora": "qlora.json",
    "prompt_tuning": "prompt.json",
    "linear_probe": "linear_probe.json",
}
PEER_MAX_STEPS = {"qlora": 20}


def sh(cmd, *, env=None, cwd=None) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}")
    return out, time.perf_counter() - t0


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="320 train rows and 200 test rows instead of 1,000 and 872")
    ap.add_argument("--skip-peer", action="store_true", help="measure tunegate only")
    ap.add_argument("--skip-quickstart", action="store_true", help="skip the quickstart pipeline run")
    ap.add_argument(
        "--methods",
        default="lora,qlora,prompt_tuning,linear_probe",
        help="comma-separated methods to measure against their peer scripts (default: all four)",
    )
    ap.add_argument("--seeds", type=int, default=1, help="training seeds per method and side (default 1)")
    ap.add_argument(
        "--dtypes",
        default="auto",
        help="comma-separated precisions tunegate's side trains and scores in, each measured beside the peer in "
        "this run: auto (what hardware: auto picks here), float32, bfloat16 (default: auto)",
    )
    args = ap.parse_args()
    n_train, n_test = (320, 200) if args.quick else (1000, None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT / "src"))
    from tunegate.modeling import resolve_model

    model_dir = resolve_model("smollm2-135m-instruct").path
    work = Path(tempfile.mkdtemp(prefix="tunegate-bench-"))
    env = {
        **os.environ,
        "REF_MODEL": model_dir,
        "REF_DATA": str(SST2),
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    py = sys.executable
    from tunegate import hardware

    res: dict = {
        "setting": {"n_train": n_train, "n_test": n_test or 872, "threads": 2, "model": model_dir},
        "machine": hardware.cpu_kind(),
        "dtype": (auto := hardware.current().dtype),
        "dtypes": [auto if d == "auto" else d for d in args.dtypes.split(",")],
    }

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    peer = work / "peer"
    shutil.copytree(PEER, peer)  # run a copy: the scripts write results/ beside themselves
    test_args = ["--n-test", str(n_test)] if n_test else []
    for i, m in enumerate(methods, 1):
        steps = ["--max-steps", str(PEER_MAX_STEPS[m])] if m in PEER_MAX_STEPS else []
        probe_full = m == "linear_probe"  # the peer probe always scores the full test set: so do we
        seeds = range(1 if m == "linear_probe" else args.seeds)
        res[f"ours_{m}"], res[f"peer_{m}"] = [], []
        for seed in seeds:
            print(f"[{i}/{len(methods)}] {m} seed {seed}: tunegate, then the peer script, {n_train} train rows ...")
            for dtype in res["dtypes"]:
                out, _ = sh(
                    [
                        py,
                        ROOT / "benchmarks" / "_ours.py",
                        "--mode",
                        m,
                        "--data",
                        SST2,
                        "--n-train",
                        str(n_train),
                        "--seed",
                        str(seed),
                        "--dtype",
                        dtype,
                        *steps,
                        *([] if probe_full else test_args),
                        "--out",
                        work / f"ours-{m}-{seed}-{dtype}",
                    ],
                    env=env,
                )
                res[f"ours_{m}"].append(last_json(out.stdout))
            if not args.skip_peer:
                cmd = [py, *PEER_CMD[m], "--n_train", str(n_train)]
                if m != "linear_probe":
                    cmd += ["--seed", str(seed)]
                if m != "linear_probe" and n_test:
                    cmd += ["--n_test", str(n_test)]
                if m in PEER_MAX_STEPS:
                    cmd += ["--max_steps", str(PEER_MAX_STEPS[m])]
                sh(cmd, env=env, cwd=peer)
                res[f"peer_{m}"].append(json.loads((peer / "results" / PEER_RESULT[m]).read_text()))
    print("[+] zero-shot scoring: tunegate, then the peer ...", flush=True)
    out, _ = sh(
        [
            py,
            ROOT / "benchmarks" / "_ours.py",
            "--mode",
            "score",
            "--data",
            SST2,
            *test_args,
            "--out",
            work / "ours-score",
        ],
        env=env,
    )
    res["ours_score"] = last_json(out.stdout)
    if not args.skip_peer:
        sh(
            [py, "zeroshot.py", "--shots", "0", "--reps", "1", *(["--n", str(n_test)] if n_test else [])],
            env=env,
            cwd=peer,
        )
        res["peer_score"] = json.loads((peer / "results" / "zeroshot_0shot.json").read_text())

    if not args.skip_quickstart:
        print("[+] quickstart pipeline run (embedded Prefect) ...", flush=True)
        qs = work / "qs"
        qs.mkdir()
        _, wall = sh(
            [
                py,
                "-m",
                "tunegate.cli",
                "run",
                ROOT / "examples" / "quickstart" / "config.yaml",
                "--set",
                f"registry.path={qs / 'registry'}",
                "--set",
                f"output.dir={qs / 'runs'}",
            ],
            env=env,
            cwd=qs,
        )
        run_dir = next((qs / "runs").iterdir())
        stages = [json.loads(line) for line in (run_dir / "timings.jsonl").read_text().splitlines()]
        decision = json.loads((run_dir / "decision.json").read_text())
        model_work = sum(c.get("train_seconds", 0) + c.get("eval_seconds", 0) for c in decision["costs"].values())
        res["quickstart"] = {
            "wall_s": wall,
            "stages": stages,
            "model_work_s": model_work,
            "overhead_s": wall - model_work,
            "decision": decision["decision"],
            "tuned": decision["tuned"],
            "baselines": decision["baselines"],
        }

    report(res)
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(res, indent=2))
    print(f"\nwritten: {path}")
    shutil.rmtree(work, ignore_errors=True)


def report(res: dict) -> None:
    st = res["setting"]
    print(
        f"\nSST-2, SmolLM2-135M, 2 threads; {st['n_train']} train rows (QLoRA: 20 steps), batch 16, 1 epoch; "
        f"peer settings per method (peer: float32); test rows {st['n_test']} (probe: 872 on both sides)"
    )
    dtypes = res.get("dtypes") or [res.get("dtype", "?")]
    print(
        f"machine: {res['machine']} (hardware: auto picks {res.get('dtype', '?')} here); tunegate measured in "
        f"{', '.join(dtypes)}"
    )
    print(f"{'':40}{'tunegate':>16}{'peer':>16}{'ratio':>8}")

    def cell(xs, fmt):
        if not xs:
            return "-", None
        mean = statistics.fmean(xs)
        text = fmt.format(mean) + (f"±{fmt.format(statistics.stdev(xs))}" if len(xs) > 1 else "")
        return text, mean

    def row(name, ours, peer, key, fmt="{:.1f}"):
        a, am = cell([r[key] for r in ours], fmt)
        b, bm = cell([r[key] for r in peer], fmt)
        ratio = f"{am / bm:.2f}x" if am is not None and bm else ""
        print(f"{name:40}{a:>16}{b:>16}{ratio:>8}")

    for m in ("lora", "qlora", "prompt_tuning"):
        for dtype in dtypes:
            o = [r for r in res.get(f"ours_{m}") or [] if r.get("dtype", dtype) == dtype]
            p = res.get(f"peer_{m}") or []
            if not o:
                continue
            name = f"{m} [{dtype}]" if len(dtypes) > 1 else m
            seeds = f" ({len(o)} seeds, mean±sd)" if len(o) > 1 else ""
            row(f"{name} train tokens/s{seeds}", o, p, "train_tok_per_s")
            row(f"{name} peak RSS during training MB", o, p, "peak_rss_train_mb", "{:.0f}")
            row(f"{name} test accuracy", o, p, "test_acc", "{:.3f}")
            row(f"{name} train seconds", o, p, "train_s", "{:.0f}")
            row(f"{name} tuned-model scoring examples/s", o, p, "eval_ex_per_s")
    o, p = (res.get("ours_linear_probe") or [None])[0], (res.get("peer_linear_probe") or [None])[0]
    if o:
        pr = [] if p is None else [p]
        row(
            "linear_probe feature examples/s (train)",
            [o],
            [{"feature_ex_per_s": x["runs"][0]["ex_per_s"]} for x in pr],
            "feature_ex_per_s",
        )
        row("linear_probe test accuracy", [o], [{"test_acc": x["acc_cv_selected"]} for x in pr], "test_acc", "{:.3f}")
        row("linear_probe process peak RSS MB", [o], pr, "peak_rss_mb", "{:.0f}")
        print(
            "  (peer: mean-pooled final-layer states of the raw text, logistic head with C chosen by 5-fold CV; "
            "tunegate: last-token states two-thirds deep of the chat prompt, early-stopped linear head)"
        )
    s, ps = res["ours_score"], res.get("peer_score")
    pr = [] if ps is None else [ps["runs"][0]]
    row("zero-shot scoring examples/s", [s], [{"eval_ex_per_s": x["ex_per_s"]} for x in pr], "eval_ex_per_s")
    row("zero-shot accuracy", [s], [{"test_acc": x["acc"]} for x in pr], "test_acc", "{:.3f}")
    print(
        "(peer: lora_dropout 0.05, full-vocabulary logits, QLoRA with gradient checkpointing on "
        "(prepare_model_for_kbit_training's default); tunegate: its defaults: dropout 0, micro-batch 4, output layer "
        "on answer tokens only, random batches cut into micro-batches of similar lengths)"
    )
    q = res.get("quickstart")
    if q:
        print(f"\nQuickstart `tunegate run` (embedded Prefect): {q['wall_s']:.0f} s wall; decision {q['decision']}")
        for st in q["stages"]:
            print(f"  {st['stage']:<32}{st['seconds']:>8.1f} s")
        print(f"  model work (training + scoring)  {q['model_work_s']:>8.1f} s")
        print(
            f"  pipeline overhead                {q['overhead_s']:>8.1f} s  (Prefect start-up, model loads, "
            "validation, reports)"
        )


if __name__ == "__main__":
    main()
