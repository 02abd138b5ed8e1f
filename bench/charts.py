"""Charts of the figures people compare (matplotlib, no display needed): SVG files under docs/.

`python -m bench` draws them after the parts that feed them ran (not for `--quick` or `--no-write`
unless `--charts DIR` says where): docs/bench-dmap.svg (scenario 6) and docs/bench-cluster.svg
(scenario 7); `python -m bench.rediswork --callgrind --code A --code B ... --chart FILE` draws
docs/bench-redis-instructions.svg. Written without a date or random ids, so a file changes only when
its figures do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "openfnf-bench"  # stable element ids between runs
    matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: small files, searchable
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})


def _bars(ax: Any, labels: list[str], values: list[float], colors: list[str], unit: str) -> None:
    """Horizontal bars, the first label on top, each with its value."""
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, values, color=colors)
    ax.set_yticks(ys, labels)
    top = max(values) if values else 1.0
    for y, v in zip(ys, values, strict=True):
        ax.text(v + top * 0.01, y, f"{v:,.0f}{unit}", va="center", fontsize=8)
    ax.set_xlim(0, top * 1.22)
    ax.grid(axis="x", alpha=0.3)
    ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:,.0f}")


OURS, OURS_LIGHT, PEER, GREY = "#1f6fb2", "#7fb3e0", "#c4572a", "#8a8a8a"


def dmap_chart(f: dict[str, Any], path: Path, caption: str) -> Path:
    """Items/s of scenario 6: our distributed Map (Express, Standard, function calls), our inline Map, moto's."""
    fig = _figure(8.0, 3.6)
    ax = fig.add_subplot()
    labels = [
        f"OpenFnF distributed, Express children\n{f['items']:,} items, each a Pass",
        f"OpenFnF distributed, Standard children\n{f['items']:,} items, each a Pass",
        f"OpenFnF distributed, Express children\n{f['call_items']:,} items, each a function call",
        f"OpenFnF inline Map\n{f['per']:,} items per execution",
        f"moto inline Map\n{f['per']:,} items per execution",
    ]
    values = [f["express"], f["standard"], f["call"], f["inline"], f["moto"]]
    _bars(ax, labels, values, [OURS, OURS, OURS, OURS_LIGHT, PEER], "/s")
    for target, name, style in ((5000, "target with Express children", "--"), (2000, "target with Standard children", ":")):
        ax.axvline(target, color=GREY, linestyle=style, linewidth=1, label=f"{name}: {target:,}/s")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_xlabel("items per second (more is better)")
    ax.set_title("Distributed Map: items/s, 2 workers", fontsize=10)
    fig.supxlabel(caption, x=0.01, ha="left", fontsize=6, color=GREY)  # its own space under the axes
    _save(fig, path)
    return path


def instructions_chart(points: list[tuple[str, float]], path: Path, caption: str) -> Path:
    """bench.rediswork --callgrind over several checkouts: redis-server's instructions per execution, with
    half of the first's (issue 17's target) marked."""
    fig = _figure(9.5, 1.0 + 0.45 * len(points))
    ax = fig.add_subplot()
    _bars(ax, [label for label, _ in points], [v / 1000 for _, v in points], [GREY] + [OURS] * (len(points) - 1), "k")
    half = points[0][1] / 2000
    ax.axvline(half, color=PEER, linestyle="--", linewidth=1, label=f"half of the first: {half:,.0f}k")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_xlabel("thousands of instructions (less is better)")
    ax.set_title("redis-server's work per execution of the 10-state Pass flow", fontsize=10)
    fig.supxlabel(caption, x=0.01, ha="left", fontsize=6, color=GREY)
    _save(fig, path)
    return path


def cluster_chart(f: dict[str, Any], path: Path, caption: str) -> Path:
    """Scenario 7: redis-server CPU per execution by server, and the ceilings it implies beside completed/s."""
    fig = _figure(9.5, 4.2)
    left, right = fig.subplots(1, 2)
    shards: list[float] = list(f["shards"])
    labels = ["one Redis: state and broker", "state Redis (broker apart)", "broker Redis (state apart)"]
    values = [f["cpu_one"], f["cpu_state"], f["cpu_broker_split"]]
    labels += [f"cluster shard {i}" for i in range(len(shards))] + ["broker Redis (cluster run)"]
    values += shards + [f["cpu_broker_cluster"]]
    colors = [PEER, OURS_LIGHT, GREY] + [OURS] * len(shards) + [GREY]
    _bars(left, labels, values, colors, " µs")
    left.set_xlabel("redis-server CPU per completed execution, µs")
    left.set_title(f"Busiest shard: {100 * f['share']:.0f}% of the state's CPU", fontsize=8)
    rlabels = ["ceiling: one Redis", "ceiling: state Redis alone", "ceiling: cluster (busiest shard)",
               "measured here: one Redis", "measured here: state + broker", "measured here: cluster + broker"]  # fmt: skip
    rvalues = [f["ceiling_one"] or 0.0, f["ceiling_state"] or 0.0, f["ceiling_cluster"] or 0.0, f["one"], f["split"], f["cluster"]]
    _bars(right, rlabels, rvalues, [PEER, OURS_LIGHT, OURS, GREY, GREY, GREY], "/s")
    right.set_xlabel("10-state executions per second")
    right.set_title("Ceilings: one core / CPU per execution", fontsize=8)
    fig.suptitle("Scenario 2 on one Redis and on a 3-primary Redis Cluster", fontsize=10)
    fig.supxlabel(caption, x=0.01, ha="left", fontsize=6, color=GREY)  # its own space under the axes
    _save(fig, path)
    return path


def write(facts: dict[str, Any], out: Path, caption: str) -> list[Path]:
    """Every chart whose figures this run produced; [] when matplotlib is missing (said on stderr by the caller)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    done = []
    if facts.get("dmap"):
        done.append(dmap_chart(facts["dmap"], out / "bench-dmap.svg", caption))
    if facts.get("cluster"):
        done.append(cluster_chart(facts["cluster"], out / "bench-cluster.svg", caption))
    return done
