"""Serving under load: continuous batching vs one request at a time, on loopback.

For each architecture (default sizes: the default transformer and the default LSTM, char level,
Tiny Shakespeare vocabulary; weights from one training step, since speed does not depend on them)
the benchmark starts ``xuxie serve`` in its own process on a free loopback port and sends
``--requests`` streamed completions of ``--max-tokens`` tokens each, ``--concurrency`` at a
time, then the same requests one at a time (the baseline, same server, same run). It prints
errors, p50/p95 latency, p50/p95 time to first token, and aggregate generated tokens/s, and the
ratio of the two throughputs; then the same for whole (non-streamed) responses. Each request has
its own seed, the same in every run: how many texts came out the same alone and amid the others
measures batch invariance.

    python benchmarks/bench_serve.py                       # 200 requests, 16 at a time, 200 tokens
    python benchmarks/bench_serve.py --requests 50 --archs lstm

Run it on a quiet machine (nothing else using the CPU): the server and this client share it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import CORPORA, parser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_default(arch: str, out: Path) -> None:
    from xuxie import TextGenerator

    text = (CORPORA / "tinyshakespeare.txt").read_text(encoding="utf-8")[:200_000]
    TextGenerator.train(text, arch=arch, out=out, steps=1, eval_interval=1, preview_length=0, progress=False)


async def one_request(client: httpx.AsyncClient, url: str, model: str, seed: int, max_tokens: int, stream: bool) -> dict:
    body = {"model": model, "prompt": "ROMEO:", "max_tokens": max_tokens, "seed": seed, "stream": stream}
    start = time.perf_counter()
    if not stream:
        r = await client.post(url + "/v1/completions", json=body)
        seconds = time.perf_counter() - start
        if r.status_code != 200:
            return {"error": f"HTTP {r.status_code}", "latency": seconds, "ttft": None, "tokens": 0, "text": ""}
        answer = r.json()
        return {"error": None, "latency": seconds, "ttft": None, "tokens": answer["usage"]["completion_tokens"],
                "text": answer["choices"][0]["text"]}
    body["stream_options"] = {"include_usage": True}
    first = None
    tokens = 0
    error = None
    text = []
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code != 200:
            return {"error": f"HTTP {r.status_code}", "latency": time.perf_counter() - start, "ttft": None, "tokens": 0, "text": ""}
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if "error" in event:
                error = event["error"]["message"]
            elif event["choices"]:
                text.append(event["choices"][0]["text"])
                if first is None and text[-1]:
                    first = time.perf_counter() - start
            elif event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
    return {"error": error, "latency": time.perf_counter() - start, "ttft": first, "tokens": tokens, "text": "".join(text)}


async def load(url: str, model: str, requests: int, concurrency: int, max_tokens: int, stream: bool = True) -> tuple[list[dict], float]:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def bounded(i: int) -> dict:
            async with gate:
                return await one_request(client, url, model, i, max_tokens, stream)
        start = time.perf_counter()
        results = await asyncio.gather(*(bounded(i) for i in range(requests)))
        return results, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def summary(results: list[dict], seconds: float) -> dict:
    ok = [r for r in results if not r["error"]]
    latency = [r["latency"] for r in ok]
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None] or [math.nan]
    tokens = sum(r["tokens"] for r in ok)
    return {"errors": len(results) - len(ok), "p50": statistics.median(latency), "p95": percentile(latency, 0.95),
            "ttft50": statistics.median(ttft), "ttft95": percentile(ttft, 0.95), "tok_s": tokens / seconds, "tokens": tokens,
            "seconds": seconds, "texts": [r["text"] for r in results]}


def start_server(model_dir: Path, name: str, port: int, concurrency: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "xuxie", "serve", f"{name}={model_dir}", "--port", str(port),
           "--max-concurrency", str(max(concurrency, 1)), "--max-queue", "1000"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not start: {proc.stderr.read()}")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            flags = Path("/proc/cpuinfo").read_text()
            return line.split(":", 1)[1].strip() + (" (avx512_bf16)" if "avx512_bf16" in flags else " (no bf16)")
    return "unknown CPU"


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--archs", nargs="+", default=["transformer", "lstm"])
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=200)
    args = p.parse_args()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; {args.requests} streamed requests × {args.max_tokens} tokens")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            model_dir = Path(tmp) / arch
            train_default(arch, model_dir)
            port = free_port()
            server = start_server(model_dir, arch, port, args.concurrency)
            url = f"http://127.0.0.1:{port}"
            try:
                asyncio.run(load(url, arch, 4, 4, 20))  # warm-up
                rows = {}
                for stream in (True, False):
                    kind = "streamed" if stream else "whole"
                    for label, conc in ((f"{args.concurrency} at a time", args.concurrency), ("one at a time", 1)):
                        results, seconds = asyncio.run(load(url, arch, args.requests, conc, args.max_tokens, stream))
                        rows[(kind, label)] = summary(results, seconds)
            finally:
                server.terminate()
                server.wait(timeout=30)
            print(f"\n{arch} (default size)")
            print(f"  {'responses':<9} {'load':<16} {'errors':>6} {'p50 s':>7} {'p95 s':>7} {'TTFT p50':>9} {'TTFT p95':>9} "
                  f"{'tokens/s':>9} {'wall s':>7}")
            for (kind, label), s in rows.items():
                print(f"  {kind:<9} {label:<16} {s['errors']:>6} {s['p50']:>7.2f} {s['p95']:>7.2f} {s['ttft50']:>9.3f} "
                      f"{s['ttft95']:>9.3f} {s['tok_s']:>9,.0f} {s['seconds']:>7.1f}")
            for kind in ("streamed", "whole"):
                batched, single = (s for (k, _), s in rows.items() if k == kind)
                same = sum(a == b for a, b in zip(batched["texts"], single["texts"]))
                print(f"  {kind}: continuous batching gives {batched['tok_s'] / single['tok_s']:.1f}x the tokens/s of one at a time; "
                      f"the same seed wrote the same text in both runs for {same} of {len(single['texts'])} requests")


if __name__ == "__main__":
    main()
