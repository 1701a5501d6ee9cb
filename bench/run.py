"""The benchmark: how fast the suite gives its verdict on the running twin, beside the install
guide's own verification commands, and what the twin costs. Prints each figure as
min / median / max over several runs, with its target.

    python bench/run.py                 # the twin must be up (criobe-verify --stack twin --keep-up)
    python bench/run.py --runs 5 --cold # also a bring-up from an empty build cache (minutes)

Figures: the static verdict (layers host to reachability, attach mode) serial and with -n 2
and the guide's 16 commands (bench/guide_checks.sh), with the number of checks each made;
the two-stage e2e run's wall time beside the function compute inside it;
the seconds each added function container costs; the twin's bring-up with its images built
(and, with --cold, from an empty build cache); the latency layer's per-call overhead against
a bare httpx loop on the same function; the peak memory of the twin (docker stats) and of
the pytest process. Measured, never asserted: bench/ is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from criobe_verify.nuclio import Dashboard, function_config  # noqa: E402
from criobe_verify.profile import load_profile  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
PROFILE = ROOT / "profiles" / "twin.toml"
STATIC = [
    "host",
    "containers",
    "ports",
    "network",
    "gateway",
    "services",
    "functions",
    "reachability",
]


def suite(*args: str, profile: Path = PROFILE) -> tuple[float, dict, int]:
    """(wall seconds, summary, peak RSS in KB) of one criobe-verify run in attach mode."""
    reports = Path(tempfile.mkdtemp(prefix="bench-"))
    cmd = ["/usr/bin/time", "-f", "%M", PYTHON, "-m", "criobe_verify.cli", "--reports",
           str(reports), "--", "--stack", "attach", f"--profile={profile}", "-q", *args]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads((reports / "summary.json").read_text())
    rss = int(proc.stderr.strip().splitlines()[-1]) if proc.stderr.strip() else 0
    return wall, summary, rss


def static_args(extra: tuple[str, ...] = ()) -> list[str]:
    return [*(f"--layer={name}" for name in STATIC), *extra]


def checks(summary: dict) -> int:
    return sum(v for k, v in summary["totals"].items() if k != "not run")


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


class DockerStats:
    """Peak total memory of the twin's containers while something runs (docker stats)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        out = subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"],
            capture_output=True, text=True,
        ).stdout  # fmt: skip
        total = 0.0
        units = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
        for line in out.splitlines():
            name, usage = line.split(" ", 1)
            if not (name.startswith(("cvat_", "nuclio")) or name in ("traefik", "bridge")):
                continue
            value = usage.split("/")[0].strip()
            for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
                if value.endswith(unit):
                    total += float(value[: -len(unit)]) * factor
                    break
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())

    def __enter__(self) -> DockerStats:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def guide_baseline() -> tuple[float, int, int]:
    start = time.perf_counter()
    out = subprocess.run(["bash", str(ROOT / "bench" / "guide_checks.sh")], capture_output=True,
                         text=True, cwd=ROOT).stdout  # fmt: skip
    wall = time.perf_counter() - start
    last = out.strip().splitlines()[-1].split()
    return wall, int(last[1]), int(last[3])


def growth(runs: int, copies: int) -> tuple[float, float, int, int]:
    """Static verdict with `copies` extra deployed function containers listed in the profile:
    (added s, added s per container, copies, checks added per container)."""
    profile = load_profile(PROFILE)
    dashboard = Dashboard(profile.nuclio_url)
    base = profile.functions[0]
    names = [f"{base.name}-bench{i}" for i in range(copies)]
    extra_profile = Path(tempfile.mkdtemp()) / "twin-grown.toml"
    text = PROFILE.read_text()
    for name in names:
        text += (
            f'\n[[functions]]\nname = "{name}"\nrole = "{base.role}"\npath = "{base.path}"\n'
            f"budget_cpu_s = 2.5\n"
        )
    extra_profile.write_text(text)
    try:
        for name in names:
            config = function_config(ROOT / "twin" / base.path / "function.yaml", "cvat")
            config["metadata"]["name"] = name
            dashboard.deploy(config)
        dashboard.wait_ready(names, 300)
        time.sleep(10)  # the new containers' first health checks and start-up settle
        before, after = [], []
        for _ in range(runs):  # alternated, so a machine slowing down loads both alike
            before.append(suite(*static_args()))
            after.append(suite(*static_args(), profile=extra_profile))
    finally:
        for name in names:
            dashboard.delete(name)
        dashboard.close()
    added = statistics.median([a[0] for a in after]) - statistics.median([b[0] for b in before])
    checks_added = (checks(after[0][1]) - checks(before[0][1])) // copies
    return added, added / copies, copies, checks_added


def bring_up(cold: bool) -> float:
    subprocess.run(["bash", "scripts/twin.sh", "down"], cwd=ROOT, capture_output=True)
    if cold:
        subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True)
        subprocess.run(
            ["sh", "-c", "docker images --format '{{.Repository}}:{{.Tag}}' | grep '^criobe-twin/'"
             " | xargs -r docker rmi -f"], capture_output=True)  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(
        [PYTHON, "-m", "criobe_verify.cli", "--reports", tempfile.mkdtemp(), "--", "--stack",
         "twin", "--keep-up", "-q", "--layer=host", "-k", "docker_engine"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:])
    return wall


def latency_overhead(calls: int) -> tuple[float, float, float]:
    """The latency layer's p50 per call against a bare httpx loop's on the same function."""
    profile = load_profile(PROFILE)
    fn = next(f for f in profile.functions if f.role == "corners")
    sys.path.insert(0, str(ROOT))
    from criobe_verify.fixtures.sample import load_sample

    body = load_sample(None, None).request(fn.role)
    dashboard = Dashboard(profile.nuclio_url)
    port = dashboard.function(fn.name)["status"]["httpPort"]
    dashboard.close()

    def bare_loop() -> list[float]:
        with httpx.Client(timeout=60) as client:
            for _ in range(3):
                client.post(f"http://localhost:{port}/", json=body)
            seconds = []
            for _ in range(calls):
                start = time.perf_counter()
                client.post(f"http://localhost:{port}/", json=body).raise_for_status()
                seconds.append(time.perf_counter() - start)
        return seconds

    bare = bare_loop()
    edited = Path(tempfile.mkdtemp()) / "twin-latency.toml"
    edited.write_text(
        PROFILE.read_text().replace("calls = 10\nwarmup = 2", f"calls = {calls}\nwarmup = 3")
    )
    _, summary, _ = suite("--layer=latency", "-k", fn.name, profile=edited)
    bare += bare_loop()  # before and after the harness: a machine drifting loads both alike
    harness = summary["checks"][f"latency/within-budget[{fn.name}]"]
    p50 = harness["latency"]["p50_s"]
    bare_p50 = statistics.median(bare)
    return bare_p50, p50, (p50 - bare_p50) / bare_p50


def e2e(runs: int) -> tuple[list[float], list[float], int]:
    """The two-stage run's wall times and, per run, the sum of the p50 latencies (the latency
    layer, same run) of the functions its stages called: what of the wall is compute."""
    walls, compute = [], []
    for _ in range(runs):
        _, summary, _ = suite("--layer=latency", "--layer=e2e")
        entries = summary["checks"].values()
        p50 = {e["latency"]["function"]: e["latency"]["p50_s"] for e in entries if e.get("latency")}
        for entry in entries:
            timeline = entry.get("e2e")
            if timeline and timeline["workflow"] == "two-stage":
                walls.append(timeline["wall_s"])
                compute.append(sum(p50.get(s["function"], 0.0) for s in timeline["stages"]
                                   if s["function"]))  # fmt: skip
    return walls, compute, len(walls)


def check_lengths() -> tuple[float, int, int, list[tuple[int, str]]]:
    """(median lines, checks within 12 lines, checks, the longest) of the suite's check
    functions: from `def` to the function's last line, docstring included, decorators not."""
    import ast

    lengths = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                lengths.append((node.end_lineno - node.lineno + 1, f"{path.stem}::{node.name}"))
    sizes = [n for n, _ in lengths]
    return statistics.median(sizes), sum(n <= 12 for n in sizes), len(sizes), sorted(lengths)[-3:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--copies", type=int, default=5, help="extra function containers")
    parser.add_argument("--cold", action="store_true", help="also bring up from an empty cache")
    parser.add_argument("--skip", action="append", default=[], help="figures to leave out")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, str]] = []

    if "length" not in args.skip:
        median, short, total, longest = check_lengths()
        rows.append(("check length, median (lines)", f"{median:g}",
                     f"≤ 12; {short} of {total} checks within 12 lines; longest: "
                     + ", ".join(f"{name} {n}" for n, name in reversed(longest))))  # fmt: skip
    if "static" not in args.skip:
        # Paired: the suite and the guide's commands alternate, so a machine that slows down
        # (other work, thermal) weighs on both alike and the ratio holds.
        serial, baseline = [], []
        with DockerStats() as stats:
            for _ in range(args.runs):
                serial.append(suite(*static_args()))
                baseline.append(guide_baseline())
        parallel = [suite(*static_args(("-n", "2"))) for _ in range(args.runs)]
        n_suite, n_guide = checks(serial[0][1]), baseline[0][1]
        rows += [
            ("static verdict, serial (s)", spread([s[0] for s in serial]),
             f"{n_suite} checks"),
            ("static verdict, -n 2 (s)", spread([s[0] for s in parallel]), f"{checks(parallel[0][1])} checks"),
            ("guide's own commands (s)", spread([b[0] for b in baseline]),
             f"{n_guide} commands, {baseline[0][2]} failed"),
            ("ratio suite/guide (median)",
             f"{statistics.median([s[0] for s in serial]) / statistics.median([b[0] for b in baseline]):.1f}",
             f"≤ 2.5; checks ratio {n_suite / n_guide:.1f} (target ≥ 4)"),
            ("peak twin memory (GiB)", f"{stats.peak / 1024**3:.2f}", "≤ 2.5"),
            ("peak pytest RSS (MiB)", spread([s[2] / 1024 for s in serial]), ""),
        ]  # fmt: skip
    if "growth" not in args.skip:
        added, per, copies, per_checks = growth(max(5, args.runs), args.copies)
        rows.append(("seconds per added function container", f"{per * 1000:.0f} ms",
                     f"≤ 50 ms ({copies} copies, +{added:.2f} s; {per_checks} checks each)"))  # fmt: skip
    if "latency" not in args.skip:
        bare, harness, overhead = latency_overhead(30)
        rows.append(("latency harness overhead", f"{overhead * 100:+.1f} %",
                     f"≤ 5 % (bare p50 {bare * 1000:.1f} ms, harness {harness * 1000:.1f} ms)"))  # fmt: skip
    if "e2e" not in args.skip:
        walls, compute, n = e2e(max(1, args.runs // 2))
        rows.append(("two-stage e2e wall (s)", spread(walls) if walls else "did not run",
                     f"≤ 30 s; functions' p50 inside it {spread(compute) if compute else '-'} s"
                     f" ({n} runs)"))  # fmt: skip
    if "bringup" not in args.skip:
        warm = [bring_up(cold=False) for _ in range(max(3, args.runs // 2))]
        rows.append(("twin bring-up, images built (s)", spread(warm), "≤ 45 s"))
        if args.cold:
            rows.append(("twin bring-up, empty build cache (s)", f"{bring_up(cold=True):.1f}", ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'min / median / max':<22}  target / notes")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<22}  {note}")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
