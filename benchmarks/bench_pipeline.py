"""tunegate's speed and memory on the real model, side by side with a plain peft loop.

Runs, in one go on this machine (each measurement in a fresh process, so peak RSS
compares fairly):
  1. LoRA training on SST-2 rows: tunegate's loop vs the peer loop
     (../shared/reference/peer-loops/train_peft.py): train tokens/s, peak RSS, test accuracy;
  2. zero-shot label scoring: tunegate's scorer vs the peer's (examples/s);
  3. a quickstart `tunegate run` (embedded Prefect): wall time of each stage and the
     pipeline's overhead = whole run - model work (training + scoring forward passes).

Full setting (the peer's: 1,000 train rows, batch 16, full 872-row test) takes ~30 min on
2 cores; --quick (320 rows, 200 test rows) ~12 min. Results are printed and written
to benchmarks/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PEER = SHARED / "reference" / "peer-loops"
SST2 = SHARED / "data" / "sst2"


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
    args = ap.parse_args()
    n_train, n_test = (320, 200) if args.quick else (1000, None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT / "src"))
    from tunegate.modeling import resolve_model

    model_dir = resolve_model("smollm2-135m-instruct").path
    work = Path(tempfile.mkdtemp(prefix="tunegate-bench-"))
    env = {**os.environ, "REF_MODEL": model_dir, "REF_DATA": str(SST2), "PREFECT_HOME": str(work / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    py = sys.executable
    res: dict = {"setting": {"n_train": n_train, "n_test": n_test or 872, "threads": 2, "model": model_dir}}

    print(f"[1/4] tunegate LoRA, {n_train} rows ...", flush=True)
    out, _ = sh([py, ROOT / "benchmarks" / "_ours.py", "--mode", "lora", "--data", SST2, "--n-train", str(n_train),
                 *(["--n-test", str(n_test)] if n_test else []), "--out", work / "ours-lora"], env=env)
    res["ours_lora"] = last_json(out.stdout)
    print("[2/4] tunegate zero-shot scoring ...", flush=True)
    out, _ = sh([py, ROOT / "benchmarks" / "_ours.py", "--mode", "score", "--data", SST2,
                 *(["--n-test", str(n_test)] if n_test else []), "--out", work / "ours-score"], env=env)
    res["ours_score"] = last_json(out.stdout)

    if not args.skip_peer:
        peer = work / "peer"
        shutil.copytree(PEER, peer)  # run a copy: the scripts write results/ beside themselves
        print(f"[3/4] peer loop LoRA, {n_train} rows, and peer zero-shot scoring ...", flush=True)
        sh([py, "train_peft.py", "--method", "lora", "--n_train", str(n_train), *(["--n_test", str(n_test)] if n_test else [])],
           env=env, cwd=peer)
        res["peer_lora"] = json.loads((peer / "results" / "lora.json").read_text())
        sh([py, "zeroshot.py", "--shots", "0", "--reps", "1", *(["--n", str(n_test)] if n_test else [])], env=env, cwd=peer)
        res["peer_score"] = json.loads((peer / "results" / "zeroshot_0shot.json").read_text())

    if not args.skip_quickstart:
        print("[4/4] quickstart pipeline run (embedded Prefect) ...", flush=True)
        qs = work / "qs"
        qs.mkdir()
        _, wall = sh([py, "-m", "tunegate.cli", "run", ROOT / "examples" / "quickstart" / "config.yaml",
                      "--set", f"registry.path={qs / 'registry'}", "--set", f"output.dir={qs / 'runs'}"], env=env, cwd=qs)
        run_dir = next((qs / "runs").iterdir())
        stages = [json.loads(line) for line in (run_dir / "timings.jsonl").read_text().splitlines()]
        decision = json.loads((run_dir / "decision.json").read_text())
        model_work = sum(c.get("train_seconds", 0) + c.get("eval_seconds", 0) for c in decision["costs"].values())
        res["quickstart"] = {"wall_s": wall, "stages": stages, "model_work_s": model_work, "overhead_s": wall - model_work,
                             "decision": decision["decision"], "tuned": decision["tuned"], "baselines": decision["baselines"]}

    report(res)
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(res, indent=2))
    print(f"\nwritten: {path}")
    shutil.rmtree(work, ignore_errors=True)


def report(res: dict) -> None:
    o, s = res["ours_lora"], res["ours_score"]
    p, ps = res.get("peer_lora"), res.get("peer_score")
    print(f"\nSST-2, SmolLM2-135M, float32, 2 threads; {res['setting']['n_train']} train rows, batch 16, 1 epoch, lr 2e-4, "
          f"r=8 all-linear; test rows {res['setting']['n_test']}")
    print(f"{'':34}{'tunegate':>14}{'peer loop':>14}{'ratio':>8}")

    def row(name, a, b, fmt="{:.1f}"):
        ratio = f"{a / b:.2f}x" if b else ""
        print(f"{name:34}{fmt.format(a):>14}{(fmt.format(b) if b is not None else '-'):>14}{ratio:>8}")

    row("LoRA train tokens/s", o["train_tok_per_s"], p and p["train_tok_per_s"])
    row("LoRA peak RSS during training MB", o["peak_rss_train_mb"], p and p["peak_rss_train_mb"], "{:.0f}")
    row("LoRA process peak RSS MB", o["peak_rss_mb"], p and p["peak_rss_mb"], "{:.0f}")
    row("LoRA test accuracy", o["test_acc"], p and p["test_acc"], "{:.3f}")
    row("LoRA train seconds", o["train_s"], p and p["train_s"], "{:.0f}")
    row("zero-shot scoring examples/s", s["eval_ex_per_s"], ps and ps["runs"][0]["ex_per_s"])
    row("zero-shot accuracy", s["test_acc"], ps and ps["runs"][0]["acc"], "{:.3f}")
    row("tuned-model scoring examples/s", o["eval_ex_per_s"], p and p["eval_ex_per_s"])
    if p:
        print(f"(peer uses lora_dropout=0.05 and full-vocabulary logits; tunegate uses its defaults: dropout 0, micro-batch 4, "
              f"output layer on answer tokens only; padding: tunegate {o['padded_tok'] / o['train_tok'] - 1:.0%} extra tokens, "
              f"peer {p['padded_tok'] / p['train_tok'] - 1:.0%})")
    q = res.get("quickstart")
    if q:
        print(f"\nQuickstart `tunegate run` (embedded Prefect): {q['wall_s']:.0f} s wall; decision {q['decision']}")
        for st in q["stages"]:
            print(f"  {st['stage']:<32}{st['seconds']:>8.1f} s")
        print(f"  model work (training + scoring)  {q['model_work_s']:>8.1f} s")
        print(f"  pipeline overhead                {q['overhead_s']:>8.1f} s  (Prefect start-up, model loads, validation, reports)")


if __name__ == "__main__":
    main()
