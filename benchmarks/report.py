"""Write results: JSON (everything), Markdown (absolute + ratios + targets), PNG (ratios)."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.paths import RESULTS

OURS = ("ours", "ours-pure", "ours-h11")
LOWER_IS_BETTER = {"idle", "soak"}
NO_LATENCY = {"idle"}  # memory only: no latency / CPU columns
NO_RATIO = {"soak"}  # a growth rate near 0 (or below) makes ours/peer ratios meaningless
DIGITS = {"idle": 2, "soak": 1}
SOAK_GOAL_PCT_PER_MIN = 1.0
NOISY = 0.10
Summary = dict[str, dict[str, dict[str, Any]]]


ERRORS_ALLOWED = {"maxreq"}  # recycling reports its errors beside the rate, as the finding


def value(summary: Summary, scenario: str, server: str) -> float | None:
    """The median value, or None when the measurement had errors: a rate of failed requests
    (a 500, a reset) is not a rate of served ones."""
    m = summary.get(scenario, {}).get(server, {})
    v = m.get("value")
    if m.get("errors") and scenario not in ERRORS_ALLOWED:
        return None
    return float(v) if isinstance(v, int | float) else None


def ratio(summary: Summary, scenario: str, ours: str, peer: str) -> float | None:
    """How much better ours is (>1 is better), whichever direction the metric runs."""
    if scenario in NO_RATIO:
        return None
    a, b = value(summary, scenario, ours), value(summary, scenario, peer)
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return b / a if scenario in LOWER_IS_BETTER else a / b


@dataclass(frozen=True)
class Target:
    label: str
    compute: Callable[[Summary, str], float | None]
    op: str  # ">=" or "<="
    threshold: float
    fmt: str = "{:.2f}x"


def _r(scenario: str, peer: str, peer_scenario: str | None = None) -> Callable[..., float | None]:
    def compute(s: Summary, ours: str) -> float | None:
        a = value(s, scenario, ours)
        b = value(s, peer_scenario or scenario, peer)
        return a / b if a and b else None

    return compute


def _cpu_per_mib(scenario: str, peer: str) -> Callable[..., float | None]:
    """Our worker CPU per MiB served over the peer's (lower is better)."""

    def compute(s: Summary, ours: str) -> float | None:
        a = s.get(scenario, {}).get(ours, {}).get("cpu_ms_per_mib")
        b = s.get(scenario, {}).get(peer, {}).get("cpu_ms_per_mib")
        valid = value(s, scenario, ours) is not None and value(s, scenario, peer) is not None
        ok = valid and isinstance(a, int | float) and isinstance(b, int | float) and b > 0
        return a / b if ok else None

    return compute


def _log_cost(s: Summary, ours: str) -> float | None:
    logged, plain = value(s, "accesslog", ours), value(s, "hello", ours)
    return 100 * (1 - logged / plain) if logged and plain else None


def _p99_vs_best_peer(scenario: str) -> Callable[..., float | None]:
    """The best (lowest) peer p99 over ours: >= 1 means no peer had a better p99."""

    def compute(s: Summary, ours: str) -> float | None:
        by_server = s.get(scenario, {})
        mine = by_server.get(ours, {}).get("p99_ms")
        peers = [m.get("p99_ms") for name, m in by_server.items()
                 if name not in OURS and name != "raw"]  # fmt: skip
        best = min((p for p in peers if isinstance(p, int | float)), default=None)
        return best / mine if best and isinstance(mine, int | float) and mine > 0 else None

    return compute


def _idle(s: Summary, ours: str) -> float | None:
    return value(s, "idle", ours)


def _soak_growth(s: Summary, ours: str) -> float | None:
    """Fitted RSS growth under the soak's mixed load, in % of the warm RSS per minute."""
    v = s.get("soak", {}).get(ours, {}).get("growth_pct_per_min")
    return float(v) if isinstance(v, int | float) else None


TARGETS = [
    Target("hello @64 vs uvicorn-worker", _r("hello", "uvicorn-worker"), ">=", 1.5),
    Target("hello @64 vs granian", _r("hello", "granian"), ">=", 1.3),
    Target("JSON @64 vs uvicorn-worker", _r("json", "uvicorn-worker"), ">=", 1.5),
    Target("JSON @64 vs granian", _r("json", "granian"), ">=", 1.3),
    Target("hello @64 p99: best peer's / ours", _p99_vs_best_peer("hello"), ">=", 1.0),
    Target("JSON @64 p99: best peer's / ours", _p99_vs_best_peer("json"), ">=", 1.0),
    Target("1-conn vs uvicorn-worker", _r("latency1", "uvicorn-worker"), ">=", 1.1),
    Target(
        "access log on vs uvicorn-worker (log on)", _r("accesslog", "uvicorn-worker"), ">=", 1.8
    ),
    Target("our access-log cost vs our hello", _log_cost, "<=", 15.0, "{:.1f}%"),
    Target("POST 64 KiB vs uvicorn-worker", _r("post64k", "uvicorn-worker"), ">=", 1.2),
    Target("streaming vs uvicorn-worker", _r("stream", "uvicorn-worker"), ">=", 1.2),
    Target(
        "FileResponse 1 MiB: CPU per MiB, ours / uvicorn-worker",
        _cpu_per_mib("static1m", "uvicorn-worker"),
        "<=",
        0.3,
    ),
    Target("FileResponse 100 MiB vs uvicorn-worker", _r("static100m", "uvicorn-worker"), ">=", 2.0),
    Target("WS 32 B vs uvicorn-worker", _r("ws32", "uvicorn-worker"), ">=", 1.2),
    Target("WS 64 KiB vs uvicorn-worker", _r("ws64k", "uvicorn-worker"), ">=", 1.0),
    Target("idle memory per connection", _idle, "<=", 5.0, "{:.2f} KiB"),
    Target(
        "RSS growth over the soak (ours)",
        _soak_growth,
        "<=",
        SOAK_GOAL_PCT_PER_MIN,
        "{:.2f}% of warm RSS/min",
    ),
    Target("hello as fraction of raw floor", _r("hello", "raw"), ">=", 0.5),
    # Issue 19 (the compiled build) raised these; the rows above are the earlier goals.
    Target("compiled: hello @64 vs uvicorn-worker", _r("hello", "uvicorn-worker"), ">=", 2.3),
    Target("compiled: hello @64 vs granian", _r("hello", "granian"), ">=", 1.8),
    Target("compiled: JSON @64 vs uvicorn-worker", _r("json", "uvicorn-worker"), ">=", 1.9),
    Target("compiled: JSON @64 vs granian", _r("json", "granian"), ">=", 1.5),
    Target(
        "compiled: access log on vs uvicorn-worker (log on)",
        _r("accesslog", "uvicorn-worker"),
        ">=",
        3.5,
    ),
    Target("compiled: hello as fraction of raw floor", _r("hello", "raw"), ">=", 0.65),
    Target("compiled: WS 32 B vs uvicorn-worker", _r("ws32", "uvicorn-worker"), ">=", 1.8),
    Target("HTTP/2 hello vs gunicorn-asgi", _r("h2hello", "gunicorn-asgi"), ">=", 8.0),
    Target("HTTP/2 hello vs hypercorn", _r("h2hello", "hypercorn"), ">=", 5.0),
    Target("HTTP/2 hello vs granian", _r("h2hello", "granian"), ">=", 0.5),
]


def _num(v: Any, digits: int = 0) -> str:
    if not isinstance(v, int | float):
        return "-"
    return f"{v:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def absolute_table(res: dict[str, Any]) -> list[str]:
    summary, servers = res["summary"], res["servers"]
    rows = []
    for sc, title in res["scenarios"].items():
        digits = DIGITS.get(sc, 0)
        cells = [
            _num(summary.get(sc, {}).get(s, {}).get("value"), digits)
            + ("" if value(summary, sc, s) is not None else " (errors: not counted)")
            if summary.get(sc, {}).get(s, {}).get("value") is not None else "-"
            for s in servers
        ]
        rows.append([f"{title} ({res['units'][sc]})", *cells])
    return _table(["scenario", *servers], rows)


def detail_table(res: dict[str, Any]) -> list[str]:
    summary, servers = res["summary"], res["servers"]
    rows = []
    for sc, title in res["scenarios"].items():
        if sc in NO_LATENCY:
            continue
        cells = []
        for s in servers:
            m = summary.get(sc, {}).get(s)
            if not m:
                cells.append("-")
                continue
            cells.append(
                f"{_num(m['p50_ms'], 2)} / {_num(m['p99_ms'], 2)} / "
                f"{_num(m['cpu_us_per_op'], 1)} / {m['errors']}"
            )
        rows.append([title, *cells])
    return _table(["p50 ms / p99 ms / CPU µs per op / errors", *servers], rows)


def util_table(res: dict[str, Any]) -> list[str]:
    summary, servers = res["summary"], res["servers"]
    rows = []
    for sc, title in res["scenarios"].items():
        if sc in NO_LATENCY:
            continue
        cells = [_num(summary.get(sc, {}).get(s, {}).get("cpu_util"), 2) for s in servers]
        rows.append([title, *cells])
    return _table(["server CPU utilization", *servers], rows)


def ratio_table(res: dict[str, Any], ours: str) -> list[str]:
    peers = [s for s in res["servers"] if s not in OURS]
    rows = []
    for sc, title in res["scenarios"].items():
        if sc in NO_RATIO:
            continue
        cells = [_num(ratio(res["summary"], sc, ours, p), 2) for p in peers]
        rows.append([title, *[c if c == "-" else c + "x" for c in cells]])
    return _table([f"{ours} vs", *peers], rows)


def target_table(res: dict[str, Any], ours: str) -> list[str]:
    rows = []
    compare = {">=": operator.ge, "<=": operator.le}
    for t in TARGETS:
        got = t.compute(res["summary"], ours)
        verdict = "n/a" if got is None else ("PASS" if compare[t.op](got, t.threshold) else "FAIL")
        shown = "-" if got is None else t.fmt.replace(".2f", ".3f").format(got)
        rows.append([t.label, f"{t.op} {t.fmt.format(t.threshold)}", shown, verdict])
    return _table(["target", "goal", ours, "result"], rows)


def recycling_lines(res: dict[str, Any]) -> list[str]:
    """Requests per worker life: a server that overshoots --max-requests looks faster."""
    by_server = res["summary"].get("maxreq", {})
    rows = []
    for name, m in by_server.items():
        boots, requests = m.get("worker_boots"), m.get("requests")
        per_life = requests / boots if boots and requests else None
        rows.append([name, _num(m["value"]), str(m["errors"]), _num(boots), _num(per_life)])
    if not rows:
        return []
    header = ["max-requests 200 (+jitter 50), -w 2", "req/s", "errors", "worker boots",
              "requests per worker life"]  # fmt: skip
    note = ("Worker boots are counted from gunicorn's log (hypercorn: not available). "
            "About 200-250 requests per life means --max-requests is honoured, plus up to one "
            "per open connection for a worker that drains (ours answers the request that "
            "arrives on each of its ~32 connections with Connection: close rather than drop "
            "it); far more means the worker overshoots it.")  # fmt: skip
    return ["", "## Worker recycling (median of rounds)", "", *_table(header, rows), "", note]


def soak_lines(res: dict[str, Any]) -> list[str]:
    """RSS of the worker over the soak: after warm-up, at the end, max, fitted growth."""
    by_server = res["summary"].get("soak", {})
    rows = []
    for name in res["servers"]:
        m = by_server.get(name)
        if not m:
            continue
        changes = m.get("worker_changes") or 0
        rows.append(
            [
                name + (f" (worker replaced {changes:g}x)" if changes else ""),
                _num(m.get("requests")),
                _num(m.get("rps")),
                str(m["errors"]),
                _num(m.get("rss_start_kib")),
                _num(m.get("rss_warm_kib")),
                _num(m.get("rss_end_kib")),
                _num(m.get("rss_max_kib")),
                _num(m.get("rss_end_minus_warm_kib")),
                _num(m.get("growth_kib_per_min"), 1),
                _num(m.get("growth_pct_per_min"), 2),
            ]
        )
    if not rows:
        return []
    st = res["settings"]
    header = ["server", "requests", "req/s", "errors", "RSS before load", "RSS warm",
              "RSS end", "RSS max", "end - warm", "growth KiB/min", "growth %/min"]  # fmt: skip
    note = (
        f"Fresh 1-worker server, {st.get('soak_duration_s', '?'):g}s of wrk "
        f"-c{st['connections']} -t{st['threads']} with `lua/soak.lua` (per 20 requests: 8 GET /, "
        "6 GET /json, 5 POST /echo 1 KiB, 1 GET /stream 100 KiB); the worker's VmRSS (KiB) "
        f"sampled every {st.get('soak_interval_s', '?'):g}s. Warm = first sample at or after "
        "10% of the run, end = last sample under load; growth = least-squares slope over the "
        "samples from warm to end, % of the warm RSS. Goal (ours): growth <= "
        f"{SOAK_GOAL_PCT_PER_MIN:g}%/min (a flat RSS). Measured once (first round)."
    )
    return ["", "## Soak: worker RSS under mixed load", "", *_table(header, rows), "", note]


def _per_sample(res: dict[str, Any], key: str) -> list[tuple[float, str, str]]:
    """(value of ``key``, scenario, server) for every sample that recorded it."""
    return [
        (float(m[key]), sc, name)
        for sc, by_server in res["samples"].items()
        for name, runs in by_server.items()
        for m in runs
        if isinstance(m.get(key), int | float)
    ]


def _median_and_worst(found: list[tuple[float, str, str]], digits: int) -> str:
    values = sorted(v for v, _, _ in found)
    worst = max(found)
    return (f"median {100 * values[len(values) // 2]:.{digits}f}%, "
            f"max {100 * worst[0]:.{digits}f}% ({worst[2]}/{worst[1]}).")


def noise_lines(res: dict[str, Any]) -> list[str]:
    """CPU used by other processes on the machine (not the server, not our clients)."""
    other = _per_sample(res, "foreign_cpu")
    if not other:
        return []
    line = ("Noise check: CPU used by other processes during measurements (% of one CPU): "
            + _median_and_worst(other, 0))
    noisy = sum(v > NOISY for v, _, _ in other)
    if noisy:
        line += f" {noisy} of {len(other)} measurements above {100 * NOISY:.0f}%: treat with care."
    waited = res.get("quiet_wait_total_s")
    if waited:
        line += f" The harness waited {waited:.0f}s in total for the machine to go quiet."
    return [line, *steal_lines(res)]


def steal_lines(res: dict[str, Any]) -> list[str]:
    """Steal time: CPU the hypervisor gave to other guests while this VM wanted it."""
    steal = _per_sample(res, "steal_cpu")
    if not steal:
        return []
    line = ("Steal check: CPU time the hypervisor gave to other guests during measurements (% "
            "of one CPU, both CPUs summed): " + _median_and_worst(steal, 1))
    repeats = sum(int(v) for v, _, _ in _per_sample(res, "steal_retries"))
    if repeats:
        line += f" {repeats} measurement(s) were taken again because of it."
    noisy = sum(v > NOISY for v, _, _ in steal)
    if noisy:
        line += (f" {noisy} of {len(steal)} measurements stayed above {100 * NOISY:.0f}%: "
                 "their servers ran on a CPU shared with other guests; compare CPU per request.")
    return ["", line]


def python_lines(py: dict[str, Any] | None) -> list[str]:
    """The interpreter every server ran on, and what is known about its build."""
    if not py:
        return []
    path = py["path"] if py["path"] == py["realpath"] else f"{py['path']} (-> {py['realpath']})"
    line = (
        f"- python: {py['implementation']} {py['version']}, {path}; "
        f"PGO: {py['pgo']}, LTO: {py['lto']}, libpython: {py['libpython']}"
        f"{', free-threading' if py.get('free_threading') else ''}; "
        f"{py['compiler']}, built {py['build_date']}; venv {py['venv'] or '-'}"
    )
    return [line, f"  (build flags: {py['build_note']})"]


def markdown(res: dict[str, Any]) -> str:
    m, st = res["machine"], res["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in res["versions"].items() if v)
    out = [
        f"# asgi_worker benchmarks, {res['date']}{' (quick)' if res['quick'] else ''}",
        "",
        f"- machine: {m['cpu_model']}, {m['cpus']} CPUs, kernel {m['kernel']}, "
        f"Python {m['python']}, {m['wrk']}",
        *python_lines(m.get("interpreter")),
        f"- pinning: servers on CPU {m['pinning']['servers']}, load generators on CPU "
        f"{m['pinning']['load']}; 1 worker per server (max-requests: 2)",
        f"- versions: {versions}; project commit {m['git_commit']}",
        f"- {st['rounds']} round(s), {st['duration_s']}s per measurement after "
        f"{st['warmup_s']}s warm-up, wrk -c{st['connections']} -t{st['threads']}, "
        f"{st['ws_connections']} WS connections, {st['idle_connections']} idle connections; "
        f"median over rounds; total run {res.get('duration_s', '?')}s",
        "",
        "## Absolute numbers (median)",
        "",
        *absolute_table(res),
        "",
        "## Latency, CPU cost and errors (median; errors summed over rounds)",
        "",
        *detail_table(res),
        "",
        "Server CPU utilization during the measurement (1.00 = the server's CPU was saturated; "
        "lower means the client, the 1-connection round trip or I/O was the limit):",
        "",
        *util_table(res),
    ]
    for ours in OURS:
        if ours not in res["servers"] or ours in res["skipped"]:
            continue
        if len(ratios := ratio_table(res, ours)) > 2:  # more than the header lines
            out += [
                "",
                f"## Ratios: {ours} vs each peer (>1 means {ours} is better; "
                "for idle memory the ratio is peer/ours; the soak has no ratio)",
                "",
                *ratios,
            ]
        out += ["", f"## Targets ({ours})", "", *target_table(res, ours)]
    out += recycling_lines(res)
    out += soak_lines(res)
    out += ["", *noise_lines(res)]
    if res["skipped"]:
        out += ["", "## Skipped servers", ""]
        out += [f"- **{k}**: {v.splitlines()[0]}" for k, v in res["skipped"].items()]
    if res["failures"]:
        out += ["", "## Failures during the run", ""]
        out += [
            f"- {f.get('server')}/{f.get('scenario', '-')}: {str(f['error']).splitlines()[0]}"
            for f in res["failures"]
        ]
    return "\n".join(out) + "\n"


def chart(res: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    ours = next((o for o in OURS if o in res["servers"] and o not in res["skipped"]), None)
    if ours is None:
        return False
    peers = [s for s in res["servers"] if s not in OURS]
    scenarios = [sc for sc in res["scenarios"] if sc not in NO_RATIO]
    if not scenarios:
        return False
    width = 0.8 / max(1, len(peers))
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(scenarios)), 4.8))
    for i, peer in enumerate(peers):
        points = [
            (j + (i - (len(peers) - 1) / 2) * width, r)
            for j, sc in enumerate(scenarios)
            if (r := ratio(res["summary"], sc, ours, peer)) is not None
        ]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        bars = ax.bar(xs, ys, width, label=peer)
        ax.bar_label(bars, [f"{y:.2f}" for y in ys], fontsize=6, rotation=90, padding=2)
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}x"))
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(scenarios)), scenarios, rotation=30, ha="right")
    ax.set_ylabel(f"{ours} vs peer (log scale; > 1x = {ours} better)")
    ax.set_title(f"asgi_worker ({ours}) vs peers, {res['date']}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_reports(res: dict[str, Any], outdir: Path | None, tag: str) -> list[Path]:
    outdir = outdir or RESULTS
    outdir.mkdir(parents=True, exist_ok=True)
    stem = res["date"] + (f"-{tag}" if tag else "")
    written = [outdir / f"{stem}.json", outdir / f"{stem}.md"]
    written[0].write_text(json.dumps(res, indent=1, sort_keys=False) + "\n")
    written[1].write_text(markdown(res))
    if chart(res, outdir / f"{stem}.png"):
        written.append(outdir / f"{stem}.png")
    return written
