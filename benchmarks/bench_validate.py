"""`tunegate validate` on big synthetic files: time and peak memory at 10k, 100k and 1M rows, beside a bare read.

For each size a classification CSV (20 labels, short support-style texts, 2% exact repeats)
and a 2,000-row eval file are written to a temporary folder; then, each in a fresh process
(so peak RSS is that run's own):

- ``tunegate validate`` on the whole file (every check, tokenizing every row);
- ``tunegate validate`` with ``data.max_train_rows: 5000`` (sampled before anything is tokenized);
- the reference: polars reading the same CSV whole, as strings, and hashing it (what an eager
  reader pays).

Printed: seconds (module imports excluded, tokenizer loading included), the microseconds per
row added since the previous size (flat = linear), and memory two ways: peak RSS (which also
counts the pages of the memory-mapped CSV: page cache the kernel can drop, as large as the
file) and peak anonymous memory (the process's own heap, sampled every 10 ms: what "bounded"
is about), with its growth per 100k rows.
Results go to benchmarks/results/validate-<time>.json.

    python benchmarks/bench_validate.py [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = "order card refund delivery account password invoice address parcel payment app login".split()


def write_data(folder: Path, rows: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    labels = [f"intent_{i:02d}" for i in range(20)]
    train = folder / "train.csv"
    with open(train, "w") as f:
        f.write("text,label\n")
        last = None
        for i in range(rows):
            if last and rng.random() < 0.02:
                f.write(last)
                continue
            lab = rng.choice(labels)
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18)))
            last = f'"{text} #{i}",{lab}\n'
            f.write(last)
    with open(folder / "eval.csv", "w") as f:
        f.write("text,label\n")
        for i in range(2000):
            f.write(f'"{" ".join(rng.choice(WORDS) for _ in range(10))} e{i}",{labels[i % 20]}\n')
    cfg = folder / "config.yaml"
    cfg.write_text(
        "task: classification\nmodel: smollm2-135m-instruct\n"
        "data: {train: train.csv, eval: eval.csv, duplicates: drop, leakage: drop}\n"
        f"output: {{dir: {folder / 'runs'}}}\nregistry: {{path: {folder / 'registry'}, model_name: big}}\n"
    )
    return cfg


def _anon_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("RssAnon:")) / 1024


def one(kind: str, cfg: Path) -> None:
    """Run in a child process: one measurement (imports excluded: a fixed start-up cost), one JSON line."""
    import threading

    import polars as pl

    from tunegate import stages, validation  # noqa: F401 - imported before the clock starts
    from tunegate.cli import main
    from tunegate.data import frame_hash

    peak_anon = [_anon_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak_anon[0] = max(peak_anon[0], _anon_mb())

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    if kind == "validate":
        rc = main(["validate", str(cfg)])
    elif kind == "sampled":
        rc = main(["validate", str(cfg), "--set", "data.max_train_rows=5000"])
    else:
        df = pl.read_csv(cfg.parent / "train.csv", infer_schema=False)
        frame_hash(df, columns=("text", "label"))
        rc = 0
    seconds = time.perf_counter() - t0
    done.set()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    anon = max(peak_anon[0], _anon_mb())
    print(json.dumps({"kind": kind, "rc": rc, "seconds": seconds, "peak_mb": peak, "anon_mb": anon}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--one", nargs=2, metavar=("KIND", "CONFIG"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        one(a.one[0], Path(a.one[1]))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="tunegate-bench-validate-") as tmp:
        for n in a.sizes:
            folder = Path(tmp) / str(n)
            folder.mkdir()
            cfg = write_data(folder, n)
            for kind in ("validate", "sampled", "reference"):
                out = subprocess.run(
                    [sys.executable, __file__, "--one", kind, str(cfg)], capture_output=True, text=True, check=False
                )
                lines = [x for x in out.stdout.splitlines() if x.startswith('{"kind"')]
                if not lines:
                    sys.exit(f"{kind} at {n} rows failed:\n{out.stderr[-3000:]}")
                r = json.loads(lines[-1])
                rows.append({"rows": n, **r, "mb": round((folder / "train.csv").stat().st_size / 2**20, 1)})
                print(
                    f"  {n:>9,} rows  {kind:9}  {r['seconds']:7.1f} s  peak RSS {r['peak_mb']:6.0f} MB  "
                    f"peak anon {r['anon_mb']:6.0f} MB",
                    flush=True,
                )
    print(
        "\n| rows | file MB | validate s | marginal us/row | peak RSS MB | peak anon MB | anon MB per 100k rows "
        "| sampled 5k: s | its anon MB | eager read+hash s | its RSS MB | its anon MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    prev = None
    for n in a.sizes:
        v, smp, ref = (
            next(r for r in rows if r["rows"] == n and r["kind"] == k) for k in ("validate", "sampled", "reference")
        )
        # linear growth: the cost of the rows added since the previous size, per row, stays flat
        marginal = "-" if prev is None else f"{1e6 * (v['seconds'] - prev['seconds']) / (n - prev['rows']):.0f}"
        mem = "-" if prev is None else f"{1e5 * (v['anon_mb'] - prev['anon_mb']) / (n - prev['rows']):.1f}"
        print(
            f"| {n:,} | {v['mb']} | {v['seconds']:.1f} | {marginal} | {v['peak_mb']:.0f} | {v['anon_mb']:.0f} | {mem} "
            f"| {smp['seconds']:.1f} | {smp['anon_mb']:.0f} | {ref['seconds']:.1f} | {ref['peak_mb']:.0f} "
            f"| {ref['anon_mb']:.0f} |"
        )
        prev = v
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"validate-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(rows, indent=1))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
