"""Replay real labelled rows through `tunegate serve` on loopback, with feedback, then `tunegate shadow report`.

Starts `tunegate serve --model MODEL [--shadow ...] [--canary ...] [--config ...]` on 127.0.0.1, posts N rows
to /v1/predict from CONCURRENCY clients, sends each row's true label to /v1/feedback (for the share given by
--feedback), stops the server and prints the shadow report. The rows never include the production version's
eval rows. Sources (../shared/data):

* ``sst2``: SST-2 validation sentences (the eval rows' distribution);
* ``sst2-phrases``: SST-2 phrases (GLUE train fragments: shorter inputs, a length shift);
* ``sms``: SMS messages (another domain; no SST-2 label, so no feedback).

    python benchmarks/replay_traffic.py --registry /tmp/live/registry --model sst2-sentiment@production \\
        --shadow sst2-sentiment@2 --rows sst2 --n 300
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import start, stop  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def rows(source: str, exclude: set[str]) -> list[tuple[str, str | None]]:
    if source in ("sst2", "sst2-phrases"):
        path = DATA / "sst2" / ("test.tsv" if source == "sst2" else "dev.tsv")
        out = []
        for line in path.read_text().splitlines()[1:]:
            text, _, label = line.partition("\t")
            if text.strip() and text not in exclude:
                out.append((text, label.strip()))
        return out
    if source == "sms":
        lines = (DATA / "sms_spam" / "SMSSpamCollection").read_text(encoding="utf-8", errors="replace").splitlines()
        return [(ln.split("\t", 1)[1], None) for ln in lines if "\t" in ln]
    raise SystemExit(f"--rows {source}: one of sst2, sst2-phrases, sms")


def eval_texts(registry: str, model: str) -> set[str]:
    import polars as pl

    from tunegate.registry import Registry

    info = Registry(registry).resolve(model)
    path = info.path / "eval.parquet"
    return set(pl.read_parquet(path).get_column("text").to_list()) if path.exists() else set()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--model", required=True, help="NAME@production (the champion)")
    ap.add_argument("--shadow", action="append", default=[])
    ap.add_argument("--canary", action="append", default=[])
    ap.add_argument("--config", help="a YAML with a serve: section (e.g. rollback_if)")
    ap.add_argument("--rows", default="sst2", help="sst2 | sst2-phrases | sms (default sst2)")
    ap.add_argument("--n", type=int, default=300, help="rows to replay (default 300)")
    ap.add_argument("--feedback", type=float, default=1.0, help="share of rows whose label is sent back")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report-args", default="", help="extra arguments for `tunegate shadow report`")
    args = ap.parse_args()

    pool = rows(args.rows, eval_texts(args.registry, args.model))
    random.Random(args.seed).shuffle(pool)
    pool = pool[: args.n]
    extra = [x for s in args.shadow for x in ("--shadow", s)] + [x for c in args.canary for x in ("--canary", c)]
    extra += ["--config", args.config] if args.config else []
    proc, base, up = start([args.model], args.registry, extra)
    print(f"server up in {up:.1f} s; replaying {len(pool)} {args.rows} rows from {args.concurrency} clients")
    lock, answered, fed = threading.Lock(), [0], [0]
    rolled: list[dict] = []

    def client(k: int) -> None:
        with httpx.Client(timeout=120) as c:
            for i in range(k, len(pool), args.concurrency):
                text, label = pool[i]
                r = c.post(f"{base}/v1/predict", json={"text": text}).json()
                with lock:
                    answered[0] += 1
                if label is not None and random.Random(i).random() < args.feedback:
                    f = c.post(f"{base}/v1/feedback", json={"id": r["predictions"][0]["id"], "label": label}).json()
                    with lock:
                        fed[0] += 1
                        if (f.get("rollback") or {}).get("rolled_back"):
                            rolled.append({"after": fed[0], **f["rollback"]})

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    health = httpx.get(f"{base}/health").json()
    stop(proc)
    print(f"{answered[0]} answered, {fed[0]} feedbacks in {wall:.0f} s ({answered[0] / wall:.1f} req/s)")
    mixed = f"{health['mixed_batches']} of {health['predict_batches']} batches mixed versions"
    print(f"now serving {health['model']}; {mixed}")
    for event in rolled:
        print(f"ROLLED BACK after {event['after']} feedbacks: {event['from']} -> {event['to']}: {event['reason']}")
    time.sleep(0.5)
    cmd = [sys.executable, "-m", "tunegate.cli", "shadow", "report", args.model.partition("@")[0]]
    cmd += ["--registry", args.registry, *args.report_args.split()]
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
