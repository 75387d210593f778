"""The load generator of benchmarks/gateway.py: a minimal keep-alive HTTP/1.1 client on raw asyncio
streams (so that the client's own overhead is small next to what is measured), sequential calls
interleaved between the upstream and the gateways, concurrent loads, and the CPU time they cost."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

UPSTREAM_KEY = "sk-bench-upstream"
JSON_BODY = {"model": "bench-json", "messages": [{"role": "user", "content": "Say hello."}]}
STREAM_BODY = {**JSON_BODY, "model": "bench-stream", "stream": True}
DIRECT_JSON = {**JSON_BODY, "model": "gpt-bench"}
DIRECT_STREAM = {**STREAM_BODY, "model": "gpt-bench-chunks-20", "stream_options": {"include_usage": True}}
LOAD_ROUNDS = 6


# ---- a minimal keep-alive HTTP/1.1 client ----


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.close()

    async def post(self, path: str, body: bytes, token: str | None) -> tuple[int, float | None, bytes]:
        """(status, seconds to the first body chunk, body)."""
        head = (
            f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            + (f"authorization: Bearer {token}\r\n" if token else f"authorization: Bearer {UPSTREAM_KEY}\r\n")
            + "\r\n"
        ).encode()
        started = time.perf_counter()
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw.split(b" ", 2)[1])
        lower = raw.lower()
        if b"transfer-encoding: chunked" in lower:
            parts: list[bytes] = []
            first: float | None = None
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                data = await self.reader.readexactly(size + 2)
                if first is None and b'"content":"tok' in data:
                    first = time.perf_counter() - started
                parts.append(data[:-2])
            return status, first, b"".join(parts)
        index = lower.find(b"content-length:")
        length = int(lower[index + 15 :].split(b"\r\n", 1)[0])
        return status, time.perf_counter() - started, await self.reader.readexactly(length)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Served:
    """One gateway process: its code (the current tree, or a baseline worktree), database and tokens."""

    def __init__(self, label: str, url: str, tokens: list[str], process: subprocess.Popen[str], port: int):
        self.label, self.url, self.tokens, self.process, self.port = label, url, tokens, process, port


# ---- measurements ----


async def sequential(
    gateways: list[tuple[int, str]], up: int, calls: int, stream: bool
) -> list[dict[str, float]]:
    """Calls in turn: one direct, then one through each gateway (port, token); per gateway its
    latencies next to the direct calls of the same rounds."""
    gconns = [(await Conn.open(port), token) for port, token in gateways]
    dconn = await Conn.open(up)
    gbody = json.dumps(STREAM_BODY if stream else JSON_BODY).encode()
    dbody = json.dumps(DIRECT_STREAM if stream else DIRECT_JSON).encode()
    direct: list[float] = []
    d_first: list[float] = []
    gateway: list[list[float]] = [[] for _ in gateways]
    g_first: list[list[float]] = [[] for _ in gateways]
    for i in range(calls + 200):
        t0 = time.perf_counter()
        status, first, _ = await dconn.post("/v1/chat/completions", dbody, None)
        t1 = time.perf_counter()
        if status != 200:
            raise SystemExit(f"unexpected status: direct {status}")
        if i >= 200:  # warm-up
            direct.append((t1 - t0) * 1000)
            if first is not None:
                d_first.append(first * 1000)
        for index, (gconn, token) in enumerate(gconns):
            t1 = time.perf_counter()
            gstatus, gfirst, _ = await gconn.post("/v1/chat/completions", gbody, token)
            t2 = time.perf_counter()
            if gstatus != 200:
                raise SystemExit(f"unexpected status: gateway {index} {gstatus}")
            if i >= 200:
                gateway[index].append((t2 - t1) * 1000)
                if gfirst is not None:
                    g_first[index].append(gfirst * 1000)
    for gconn, _ in gconns:
        gconn.close()
    dconn.close()
    results = []
    for index in range(len(gateways)):
        result = {
            "direct_p50": pct(direct, 0.5),
            "direct_p99": pct(direct, 0.99),
            "gateway_p50": pct(gateway[index], 0.5),
            "gateway_p99": pct(gateway[index], 0.99),
        }
        result["added_p50"] = result["gateway_p50"] - result["direct_p50"]
        result["added_p99"] = result["gateway_p99"] - result["direct_p99"]
        if stream:
            result["ttfc_direct_p50"] = pct(d_first, 0.5)
            result["ttfc_gateway_p50"] = pct(g_first[index], 0.5)
            result["ttfc_direct_p99"] = pct(d_first, 0.99)
            result["ttfc_gateway_p99"] = pct(g_first[index], 0.99)
        results.append(result)
    return results


async def load(
    port: int, token: str | list[str] | None, calls: int, concurrency: int, stream: bool
) -> tuple[float, int]:
    """``calls`` calls from ``concurrency`` keep-alive connections; with a list of tokens, connection
    i calls with token i (modulo the list): one caller per member."""
    tokens = token if isinstance(token, list) else [token]
    body = json.dumps(
        (STREAM_BODY if stream else JSON_BODY) if token else (DIRECT_STREAM if stream else DIRECT_JSON)
    ).encode()
    errors = 0
    remaining = calls

    async def worker(index: int) -> None:
        nonlocal errors, remaining
        conn = await Conn.open(port)
        mine = tokens[index % len(tokens)]
        while remaining > 0:
            remaining -= 1
            status, _, _ = await conn.post("/v1/chat/completions", body, mine)
            if status != 200:
                errors += 1
        conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return calls / (time.perf_counter() - started), errors


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process and its children (the usage writer process)
    have used so far."""
    total = 0.0
    pids = [pid]
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        pids += [int(child) for child in children.read_text().split()]
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # it ended meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def alternating_loads(
    served: list[Served], calls: int, rounds: int, stream: bool
) -> list[tuple[float, int, float]]:
    """(calls/s, errors, gateway CPU ms per call) per gateway, the calls made in ``rounds`` parts
    whose order alternates. CPU time per call depends less on what else the machine runs."""
    elapsed = [0.0] * len(served)
    cpu = [0.0] * len(served)
    errors = [0] * len(served)
    made = [0] * len(served)
    for number in range(rounds):
        part = calls // rounds + (calls % rounds if number == rounds - 1 else 0)
        order = list(range(len(served)))
        if number % 2:
            order.reverse()
        for index in order:
            pid = served[index].process.pid
            started, cpu_before = time.perf_counter(), cpu_seconds(pid)
            _, failed = await load(served[index].port, served[index].tokens, part, 32, stream=stream)
            elapsed[index] += time.perf_counter() - started
            cpu[index] += cpu_seconds(pid) - cpu_before
            errors[index] += failed
            made[index] += part
    return [(made[i] / elapsed[i], errors[i], cpu[i] / made[i] * 1000) for i in range(len(served))]
