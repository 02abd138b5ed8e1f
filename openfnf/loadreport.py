"""What `openfnf loadtest` reports: the summary table, report.json and the chart (matplotlib, Agg)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.percentile import percentile

if TYPE_CHECKING:
    from openfnf.loadtest import LoadConfig, RunResult, Sample


def _ms(values: list[float], ps: tuple[int, ...] = (50, 90, 99)) -> dict[str, float]:
    s = sorted(v * 1000 for v in values)
    out = {f"p{p}": round(percentile(s, p), 2) for p in ps}
    out["max"] = round(s[-1], 2) if s else 0.0
    return out


def _kind(sample: Sample) -> str:
    return "ok" if 200 <= sample.status < 300 else "throttled" if sample.status == 429 else "other"


def build_report(cfg: LoadConfig, result: RunResult, finished: dict[str, Any] | None) -> dict[str, Any]:
    """The whole run as JSON-ready data: config, summary, per-second series, the finished check."""
    samples = result.samples
    codes: dict[str, int] = {}
    for s in samples:
        label = f"{s.status} {s.code}".strip() if s.status else f"no answer ({s.code})"
        codes[label] = codes.get(label, 0) + 1
    n = len(samples)
    seconds = int(math.ceil(max((s.due for s in samples), default=0) + 1e-9)) or 1
    per_second = []
    for sec in range(seconds):
        inside = [s for s in samples if sec <= s.due < sec + 1]
        lat = _ms([s.latency for s in inside if s.status])
        per_second.append(
            {
                "second": sec,
                "sent": len(inside),
                "ok": sum(1 for s in inside if _kind(s) == "ok"),
                "throttled": sum(1 for s in inside if _kind(s) == "throttled"),
                "other": sum(1 for s in inside if _kind(s) == "other"),
                "p50_ms": lat["p50"],
                "p90_ms": lat["p90"],
                "p99_ms": lat["p99"],
            }
        )
    summary = {
        "requests": n,
        "ok": sum(1 for s in samples if _kind(s) == "ok"),
        "throttled": sum(1 for s in samples if _kind(s) == "throttled"),
        "other": sum(1 for s in samples if _kind(s) == "other"),
        "codes": dict(sorted(codes.items())),
        "offered_rate": cfg.rate,
        "achieved_rate": round((n - 1) / result.send_span, 2) if n > 1 and result.send_span > 0 else float(n),
        "send_span_s": round(result.send_span, 4),
        "wall_s": round(result.wall, 3),
        "max_in_flight": result.max_in_flight,
        "latency_ms": _ms([s.latency for s in samples if s.status]),
        "send_lag_ms": _ms([max(0.0, s.sent - s.due) for s in samples], (50, 99)),
    }
    config = {
        "action": cfg.action,
        "endpoints": cfg.endpoints,
        "flow": cfg.flow,
        "rate": cfg.rate,
        "duration_s": cfg.duration,
        "concurrency": cfg.concurrency,
        "names": "unique" if cfg.unique_names else "same",
        "run_id": cfg.run_id,
    }
    return {"config": config, "summary": summary, "per_second": per_second, "finished": finished}


def render_table(report: dict[str, Any]) -> str:
    """The final table printed on stdout."""
    c, s = report["config"], report["summary"]
    n = max(1, s["requests"])
    lat, lag = s["latency_ms"], s["send_lag_ms"]
    where = ", ".join(c["endpoints"])
    lines = [
        f"{c['action']} on {where}" + (f", flow {c['flow']}" if c["flow"] else "") + (f", {c['names']} names" if c["action"] == "StartExecution" else ""),
        f"  {'offered rate':<20}{c['rate']:.1f}/s for {c['duration_s']:g} s ({s['requests']} requests, open loop)",
        f"  {'achieved rate':<20}{s['achieved_rate']:.1f}/s (sent over {s['send_span_s']:.2f} s; last answer at {s['wall_s']:.2f} s)",
        f"  {'concurrency':<20}{c['concurrency']} allowed, {s['max_in_flight']} most in flight",
        f"  {'answers':<20}2xx {s['ok']}  429 {s['throttled']}  other {s['other']}",
    ]
    for label, count in s["codes"].items():
        lines.append(f"    {label:<34}{count:>8}  {100 * count / n:5.1f}%")
    lines.append(f"  {'latency ms':<20}p50 {lat['p50']:.1f}  p90 {lat['p90']:.1f}  p99 {lat['p99']:.1f}  max {lat['max']:.1f}")
    lines.append(f"  {'send lag ms':<20}p50 {lag['p50']:.1f}  p99 {lag['p99']:.1f}  max {lag['max']:.1f} (how late requests left)")
    f = report.get("finished")
    if f is not None:
        states = ", ".join(f"{k} {v}" for k, v in sorted(f["by_status"].items()))
        verdict = "yes" if f["all_finished"] else "NO"
        lines.append(f"  {'all finished':<20}{verdict}: {f['finished']} of {f['accepted']} accepted executions ended ({states})")
    return "\n".join(lines)


def write_chart(report: dict[str, Any], path: Path) -> None:
    """PNG: accepted vs throttled per second (stacked bars) over latency percentiles per second."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = report["per_second"]
    x = [r["second"] for r in rows]
    ok = [r["ok"] for r in rows]
    throttled = [r["throttled"] for r in rows]
    other = [r["other"] for r in rows]
    fig = Figure(figsize=(10, 7), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.bar(x, ok, width=0.9, align="edge", color="#2a9d4b", label="accepted (2xx)")
    top.bar(x, throttled, width=0.9, align="edge", bottom=ok, color="#f4a300", label="throttled (429)")
    top.bar(x, other, width=0.9, align="edge", bottom=[a + b for a, b in zip(ok, throttled, strict=True)], color="#c8102e", label="other")
    top.axhline(report["config"]["rate"], color="#222222", linestyle="--", linewidth=1.2, label="offered rate", zorder=3)
    top.set_ylim(0, 1.3 * max([report["config"]["rate"], *[a + b + d for a, b, d in zip(ok, throttled, other, strict=True)]]))
    top.set_ylabel("requests per second")
    c, s = report["config"], report["summary"]
    top.set_title(f"{c['action']}: offered {c['rate']:g}/s, accepted {s['ok']}, throttled {s['throttled']}, other {s['other']}")
    top.legend(loc="upper center", ncol=4, fontsize="small")
    mid = [r["second"] + 0.45 for r in rows]
    for key, style in (("p50_ms", "-"), ("p90_ms", "--"), ("p99_ms", ":")):
        bottom.plot(mid, [r[key] for r in rows], linestyle=style, marker="o", markersize=3, label=key.replace("_ms", ""))
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("second of the run (by scheduled send time)")
    bottom.legend(loc="upper center", ncol=3, fontsize="small")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")


def write_report(report: dict[str, Any], directory: Path) -> list[Path]:
    """Write report.json and chart.png into directory; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "report.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        import click

        raise click.ClickException(
            f"wrote {out}, but the chart needs matplotlib: pip install 'openfnf[loadtest]'"
        ) from None
    chart = directory / "chart.png"
    write_chart(report, chart)
    return [out, chart]
