"""Load test of `tunegate serve` on loopback: requests/s and latency percentiles, memory, streaming.

Starts `tunegate serve --model MODEL [--model MODEL2 ...]` on 127.0.0.1 (a free port), waits for
/health, then runs CONCURRENCY clients posting /v1/predict (one real SST-2 sentence each, cycled)
for SECONDS, and prints throughput and p50/p95/p99 latency; then a short /v1/completions run.

With several models: first the memory of a server holding only the first model beside the
memory of the one holding all of them (the reference: N servers, one per model), then the
clients spread their requests over the models (p50/p95 per model), and the time to the first
streamed token of a chat completion per model. Bounded (time and loopback only); stops the
servers it started.

    python benchmarks/bench_serve.py --model sst2-sentiment@production --registry examples/sst2/registry
    python benchmarks/bench_serve.py --registry /tmp/multi/registry --model a@1 --model b@1 --model c@1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2" / "test.tsv"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sentences(n: int = 200) -> list[str]:
    if SST2.is_file():
        lines = SST2.read_text().splitlines()[1:]
        return [ln.split("\t")[0] for ln in lines[:n]]
    return ["a gorgeous, moving film", "a tedious, lifeless bore"]


def hammer(url: str, bodies: list[dict], seconds: float, concurrency: int):
    """CONCURRENCY clients posting ``bodies`` in turn for ``seconds``: latencies, statuses, wall seconds and the
    latencies per requested model."""
    latencies: list[float] = []
    statuses: list[int] = []
    per: dict[str, list[float]] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(k: int) -> None:
        i = k
        with httpx.Client(timeout=60) as c:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                r = c.post(url, json=bodies[i % len(bodies)])
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    statuses.append(r.status_code)
                    per.setdefault(bodies[i % len(bodies)].get("model", ""), []).append(dt)
                i += concurrency

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses, time.perf_counter() - t0, per


def report(name: str, lat: list[float], statuses: list[int], wall: float) -> None:
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [lat[0]] * 99
    ok = sum(s == 200 for s in statuses)
    print(
        f"{name:<28} {len(lat):>6} requests  {ok}/{len(statuses)} ok  {len(lat) / wall:7.1f} req/s  "
        f"p50 {1000 * q[49]:7.1f} ms  p95 {1000 * q[94]:7.1f} ms  p99 {1000 * q[98]:7.1f} ms"
    )


def start(models: list[str], registry: str, extra: list[str] = ()) -> tuple[subprocess.Popen, str, float]:
    """A server for ``models`` (``extra``: more `serve` arguments) on a free loopback port, up (its /health
    answers); (process, base url, seconds)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "tunegate.cli", "serve", "--registry", registry, "--port", str(port)]
    cmd += [x for m in models for x in ("--model", m)] + ["--watch-seconds", "1", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the server did not start:\n{proc.stdout.read()}")
        time.sleep(0.5)


def rss_mb(proc: subprocess.Popen) -> float:
    import psutil

    return psutil.Process(proc.pid).memory_info().rss / 2**20


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def alone(models: list[str], registry: str, texts: list[str], seconds: float, concurrency: int) -> None:
    """The reference: the first model on a server of its own, its resident memory after one request and the same
    one-text predict load."""
    proc, base, up = start(models[:1], registry)
    try:
        httpx.post(f"{base}/v1/predict", json={"model": models[0], "text": texts[0]}, timeout=60)
        one = rss_mb(proc)
        lat, st, wall, _ = hammer(f"{base}/v1/predict", [{"text": t} for t in texts], seconds, concurrency)
        report(f"reference: {models[0]} alone", lat, st, wall)
    finally:
        stop(proc)
    print(
        f"memory: 1 model  {one:7.0f} MB resident (up in {up:.1f} s); "
        f"{len(models)} servers of 1 model (the reference): {len(models) * one:7.0f} MB"
    )


def shadowed(model: str, shadow: str, registry: str, texts: list[str], seconds: float, concurrency: int) -> None:
    """The first model with a shadow scoring every request beside it: the same load as ``alone``."""
    proc, base, _ = start([model], registry, ["--shadow", shadow])
    try:
        httpx.post(f"{base}/v1/predict", json={"text": texts[0]}, timeout=60)
        lat, st, wall, _ = hammer(f"{base}/v1/predict", [{"text": t} for t in texts], seconds, concurrency)
        report(f"with shadow {shadow}", lat, st, wall)
        h = httpx.get(f"{base}/health").json()
        print(f"{'':<28} {h['mixed_batches']} of {h['predict_batches']} batches scored both versions in one forward")
    finally:
        stop(proc)


def streaming(base: str, models: list[str], texts: list[str], rounds: int = 3) -> None:
    """Time to the first streamed token and to the end of a 32-token chat completion, per model (one client)."""
    for m in models:
        firsts, totals = [], []
        for i in range(rounds):
            body = {"model": m, "messages": [{"role": "user", "content": texts[i]}], "max_tokens": 32, "stream": True}
            t0 = time.perf_counter()
            first = None
            with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=120) as r:
                for line in r.iter_lines():
                    if first is None and '"content": "' in line and '"content": ""' not in line:
                        first = time.perf_counter() - t0
            firsts.append(first or float("nan"))
            totals.append(time.perf_counter() - t0)
        print(
            f"stream {m:<30} first token {1000 * statistics.median(firsts):7.1f} ms  "
            f"whole answer {1000 * statistics.median(totals):7.1f} ms (median of {rounds}, 32 tokens max)"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", required=True, action="append", help="NAME@ALIAS to serve (repeat for several on one server)"
    )
    ap.add_argument("--registry", default="registry", help="registry root")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the predict run (default 30)")
    ap.add_argument("--concurrency", type=int, default=4, help="concurrent clients (default 4)")
    ap.add_argument("--completion-seconds", type=float, default=10.0, help="length of the completions run (0: skip)")
    ap.add_argument(
        "--shadow",
        metavar="NAME@REF",
        help="also measure the first model with this shadow (its overhead against the first model alone)",
    )
    args = ap.parse_args()
    models, texts = args.model, sentences()
    if len(models) > 1 or args.shadow:
        alone(models, args.registry, texts, args.seconds / 2, args.concurrency)
    if args.shadow:
        shadowed(models[0], args.shadow, args.registry, texts, args.seconds / 2, args.concurrency)
    proc, base, up = start(models, args.registry)
    try:
        health = httpx.get(f"{base}/health").json()
        for m in models:  # warm-up, one request each
            httpx.post(f"{base}/v1/predict", json={"model": m, "text": texts[0]}, timeout=60)
        held = "; ".join(
            f"base {v['base_bytes'] / 2**20:.0f} MB + {len(v['adapters'])} adapters {v['adapter_bytes'] / 2**20:.1f} MB"
            for v in health["memory"].values()
        )
        served = ", ".join(f"{d['ref']} ({d['method']}, {d['task']})" for d in health["models"])
        print(
            f"serving {served}; up in "
            f"{up:.1f} s; {rss_mb(proc):.0f} MB resident ({held}); {args.concurrency} clients, loopback"
        )
        bodies = [{"model": models[i % len(models)], "text": t} for i, t in enumerate(texts)]
        lat, st, wall, per = hammer(f"{base}/v1/predict", bodies, args.seconds, args.concurrency)
        report(f"/v1/predict (1 text, {len(models)} models)", lat, st, wall)
        if len(models) > 1:
            for m in models:
                report(f"  {m}", per[m], [200] * len(per[m]), wall)
        h = httpx.get(f"{base}/health").json()
        print(f"{'':<28} {h['predict_batches']} batches, {h['mixed_batches']} held several versions")
        bodies = [
            {"model": models[k % len(models)], "texts": texts[i : i + 8]} for k, i in enumerate(range(0, len(texts), 8))
        ]
        lat, st, wall, _ = hammer(f"{base}/v1/predict", bodies, args.seconds / 2, args.concurrency)
        report("/v1/predict (8 texts)", lat, st, wall)
        print(f"{'':<28} = {8 * len(lat) / wall:.1f} texts/s")
        if args.completion_seconds > 0:
            bodies = [{"model": models[i % len(models)], "prompt": t, "max_tokens": 16} for i, t in enumerate(texts)]
            lat, st, wall, _ = hammer(f"{base}/v1/completions", bodies, args.completion_seconds, args.concurrency)
            report("/v1/completions (16 tok)", lat, st, wall)
            streaming(base, models, texts)
        print(f"memory: {len(models)} models on one server: {rss_mb(proc):7.0f} MB resident after the load")
    finally:
        stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
