"""Synthetic-region benchmark: people per second, peak memory and output sizes.

Usage (from the repository root):

    .venv/bin/python benchmarks/synth.py                      # 1,000,000 people
    .venv/bin/python benchmarks/synth.py --people 200000      # the demo size
    .venv/bin/python benchmarks/synth.py --people 5000000 --keep /data/ws5m

Generates into a temporary workspace (removed afterwards unless --keep is given) and prints wall
and CPU time per phase, people/s, peak resident memory and the size of each output.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ig_policies.workspace import Workspace  # noqa: E402
from synthetic import SynthConfig, generate_region  # noqa: E402


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--chunk", type=int, default=None, help="people per activity chunk (default from config)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="write here and keep the workspace")
    args = parser.parse_args()

    cfg = SynthConfig()
    if args.chunk:
        cfg = cfg.model_copy(update={"chunk_people": args.chunk})
    root = args.keep or Path(tempfile.mkdtemp(prefix="ehl-synth-bench-"))
    ws = Workspace.open(root)

    phases: list[tuple[str, float, float, float]] = []
    state = {"label": "start", "wall": time.perf_counter(), "cpu": time.process_time()}

    def progress(_n: float, description: str) -> None:
        if description != state["label"]:
            now_wall, now_cpu = time.perf_counter(), time.process_time()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            label = str(state["label"])
            phases.append((label, now_wall - float(state["wall"]), now_cpu - float(state["cpu"]), peak))
            state.update(label=description, wall=now_wall, cpu=now_cpu)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = generate_region(ws, args.people, args.seed, cfg, progress=progress)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    progress(0, "end")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    print(f"people                {args.people:,}")
    print(f"wall time             {wall:,.1f} s")
    print(f"cpu time              {cpu:,.1f} s")
    print(f"people/s (wall)       {args.people / wall:,.0f}")
    print(f"people/s (cpu)        {args.people / cpu:,.0f}")
    print(f"peak memory (RSS)     {_human(peak_kb * 1024)}")
    print(f"  {'phase':<50} {'wall s':>8} {'cpu s':>8} {'peak RSS so far':>16}")
    for label, w, c, peak in phases[1:]:
        print(f"  {label:<50} {w:8.1f} {c:8.1f} {_human(peak):>16}")
    print("counts:")
    for k, v in result.counts.items():
        print(f"  {k:<24} {v:,}")
    print("outputs:")
    total = 0
    for name, path in sorted(result.paths.items()):
        size = path.stat().st_size
        total += size
        print(f"  {name:<36} {_human(size):>12}")
    print(f"  {'total':<36} {_human(total):>12}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"workspace kept at {root}")


if __name__ == "__main__":
    main()
