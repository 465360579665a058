"""Load test of `tunegate serve` on loopback: requests/s and latency percentiles.

Starts `tunegate serve --model MODEL` on 127.0.0.1 (a free port), waits for /health,
then runs CONCURRENCY clients posting /v1/predict (one real SST-2 sentence each, cycled)
for SECONDS, and prints throughput and p50/p95/p99 latency; then a short
/v1/completions run. Bounded (time and loopback only); stops the server it started.

    python benchmarks/bench_serve.py --model sst2-sentiment@production --registry examples/sst2/registry
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


def hammer(url: str, bodies: list[dict], seconds: float, concurrency: int) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    statuses: list[int] = []
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
                i += concurrency

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses, time.perf_counter() - t0


def report(name: str, lat: list[float], statuses: list[int], wall: float) -> None:
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [lat[0]] * 99
    ok = sum(s == 200 for s in statuses)
    print(
        f"{name:<28} {len(lat):>6} requests  {ok}/{len(statuses)} ok  {len(lat) / wall:7.1f} req/s  "
        f"p50 {1000 * q[49]:7.1f} ms  p95 {1000 * q[94]:7.1f} ms  p99 {1000 * q[98]:7.1f} ms"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="NAME@ALIAS to serve, e.g. sst2-sentiment@production")
    ap.add_argument("--registry", default="registry", help="registry root")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the predict run (default 30)")
    ap.add_argument("--concurrency", type=int, default=4, help="concurrent clients (default 4)")
    ap.add_argument("--completion-seconds", type=float, default=10.0, help="length of the completions run (0: skip)")
    args = ap.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t_start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tunegate.cli",
            "serve",
            "--model",
            args.model,
            "--registry",
            args.registry,
            "--port",
            str(port),
            "--watch-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                print(proc.stdout.read(), file=sys.stderr)
                return 1
            time.sleep(0.5)
        health = httpx.get(f"{base}/health").json()
        print(
            f"serving {health['model']} ({health['method']}, {health['task']}); up in "
            f"{time.perf_counter() - t_start:.1f} s; {args.concurrency} clients, loopback"
        )
        texts = sentences()
        httpx.post(f"{base}/v1/predict", json={"text": texts[0]}, timeout=60)  # warm-up
        lat, st, wall = hammer(f"{base}/v1/predict", [{"text": t} for t in texts], args.seconds, args.concurrency)
        report("/v1/predict (1 text)", lat, st, wall)
        lat, st, wall = hammer(
            f"{base}/v1/predict",
            [{"texts": texts[i : i + 8]} for i in range(0, len(texts), 8)],
            args.seconds / 2,
            args.concurrency,
        )
        report("/v1/predict (8 texts)", lat, st, wall)
        print(f"{'':<28} = {8 * len(lat) / wall:.1f} texts/s")
        if args.completion_seconds > 0:
            bodies = [{"prompt": t, "max_tokens": 16} for t in texts]
            lat, st, wall = hammer(f"{base}/v1/completions", bodies, args.completion_seconds, args.concurrency)
            report("/v1/completions (16 tok)", lat, st, wall)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
