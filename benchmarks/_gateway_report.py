"""The reports of benchmarks/gateway.py: each gateway's figures, and several side by side."""

from __future__ import annotations


def report(results: list[dict[str, object]], names: dict[str, str]) -> None:
    for result in results:
        report_one(result, names)
    if len(results) > 1:
        compare(results, names)


def compare(results: list[dict[str, object]], names: dict[str, str]) -> None:
    """The figures of each gateway side by side (the baseline first)."""
    ordered = sorted(results, key=lambda r: r["code"] != "baseline")
    rows: list[tuple[str, list[str]]] = []

    def added(kind: str) -> list[str]:
        out = []
        for r in ordered:
            m = r[kind]
            assert isinstance(m, dict)
            out.append(f"{m['added_p50']:.3f} / {m['added_p99']:.3f} ms")
        return out

    rows.append(("JSON added latency p50 / p99", added("json")))
    rows.append(("Stream added latency p50 / p99", added("stream")))
    ttfc = []
    for r in ordered:
        m = r["stream"]
        assert isinstance(m, dict)
        ttfc.append(f"{m['ttfc_direct_p50']:.3f} -> {m['ttfc_gateway_p50']:.3f} ms")
    rows.append(("Time to first chunk p50, direct -> gateway", ttfc))
    rows.append(
        (
            "Throughput, 32 concurrent, JSON",
            [f"{r['rate']:,.0f} calls/s, {r['errors']} errors" for r in ordered],
        )
    )
    rows.append(
        (
            "Throughput, 32 concurrent, 20-chunk streams",
            [f"{r['stream_rate']:,.0f} calls/s, {r['stream_errors']} errors" for r in ordered],
        )
    )
    rows.append(
        (
            "Gateway CPU per call under load, JSON / stream",
            [f"{r['cpu_ms']:.3f} / {r['stream_cpu_ms']:.3f} ms" for r in ordered],
        )
    )
    rows.append(("Rows recorded / calls", [f"{r['rows']:,} / {r['expected_rows']:,}" for r in ordered]))
    rows.append(("Gateway RSS after all calls", [f"{r['rss_after_mib']:.1f} MiB" for r in ordered]))
    heads = [names[str(r["code"])] for r in ordered]
    width = max(len(label) for label, _ in rows)
    cells = [max(len(h), *(len(v[i]) for _, v in rows)) for i, h in enumerate(heads)]
    print(f"\n--- {ordered[0]['backend']}: side by side ---")
    print(" " * width + " | " + " | ".join(h.ljust(c) for h, c in zip(heads, cells, strict=True)))
    for label, values in rows:
        print(label.ljust(width) + " | " + " | ".join(v.ljust(c) for v, c in zip(values, cells, strict=True)))


def report_one(result: dict[str, object], names: dict[str, str]) -> None:
    enforced = "credits enforced on member, group and account" if result["credits_on"] else "credits off"
    rules = f"; {result['policies']} access rules in scope" if result.get("policies") else ""
    print(
        f"\n=== {result['backend']}, {names[str(result['code'])]} "
        f"({enforced}; {result['members']} member(s) of one group{rules}) ==="
    )
    for kind in ("json", "stream"):
        r = result[kind]
        assert isinstance(r, dict)
        print(
            f"{kind:6} sequential: direct p50 {r['direct_p50']:.3f} ms p99 {r['direct_p99']:.3f} ms | "
            f"gateway p50 {r['gateway_p50']:.3f} ms p99 {r['gateway_p99']:.3f} ms | "
            f"added p50 {r['added_p50']:.3f} ms p99 {r['added_p99']:.3f} ms"
        )
        if kind == "stream":
            print(
                f"       time to first chunk: direct p50 {r['ttfc_direct_p50']:.3f} ms p99 "
                f"{r['ttfc_direct_p99']:.3f} ms | gateway p50 {r['ttfc_gateway_p50']:.3f} ms p99 "
                f"{r['ttfc_gateway_p99']:.3f} ms"
            )
    print(
        f"throughput, 32 concurrent, JSON: direct {result['direct_rate']:.0f} calls/s | gateway "
        f"{result['rate']:.0f} calls/s, {result['errors']} errors; gateway CPU {result['cpu_ms']:.3f} ms/call"
    )
    print(
        f"throughput, 32 concurrent, 20-chunk streams: gateway {result['stream_rate']:.0f} calls/s, "
        f"{result['stream_errors']} errors; gateway CPU {result['stream_cpu_ms']:.3f} ms/call"
    )
    print(
        f"recorded rows: {result['rows']} of {result['expected_rows']} calls made "
        f"(not yet in the database when the JSON load ended: {result['backlog']})"
    )
    print(
        f"gateway RSS: {result['rss_before_mib']:.1f} MiB before the load, {result['rss_after_mib']:.1f} MiB "
        f"after {result['calls_total']} calls"
    )
    figures = result.get("credits")
    if isinstance(figures, dict):
        print(
            f"credits: used {figures['used']} = recorded calls' credits {figures['recorded']}; "
            f"held after stop {figures['held']}; {figures['leases']} leases taken; "
            f"running totals vs ledger: {'reconciled' if not figures['reconcile'] else figures['reconcile']}"
        )
