"""py-spy profiles of a process while a scenario runs: collapsed stacks, and the top functions by self and total time."""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def start(pid: int, seconds: float, out: Path, rate: int = 250) -> subprocess.Popen[bytes] | None:
    """Begin sampling `pid` for `seconds` into `out` (py-spy's raw collapsed format); None without py-spy."""
    beside = Path(sys.executable).parent / "py-spy"  # installed in the same venv, which may not be on PATH
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", str(rate),
            "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish(proc: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    """Wait for a sampler started by start()."""
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()


def _frame(text: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)": lines of one function count together.
    name, _, where = text.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{name} ({short})"


def summarize(raw: Path, title: str, top: int = 25) -> str:
    """Markdown: samples, then the functions with the most self time and the most total time."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    if not raw.exists():
        return f"### {title}\n\nno profile ({raw} missing: is py-spy installed and allowed to ptrace?)\n"
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    lines = [f"### {title}", "", f"{samples} samples (non-idle).", "", "| self % | function |", "|---:|---|"]
    lines += [f"| {100 * n / max(1, samples):.1f} | `{f}` |" for f, n in own.most_common(top)]
    lines += ["", "| total % | function |", "|---:|---|"]
    skip = ("<module>", "_run_module_as_main", "_run_code", "run_forever", "_run_once", "run_until_complete", "Context.invoke",
            "Command.", "Group.invoke", "main (", "run_app", "api (openfnf", "worker (openfnf", "__call__ (click")  # fmt: skip
    shown = [(f, n) for f, n in total.most_common(top * 3) if not any(s in f for s in skip)][: top + 10]
    lines += [f"| {100 * n / max(1, samples):.1f} | `{f}` |" for f, n in shown]
    return "\n".join(lines) + "\n"
