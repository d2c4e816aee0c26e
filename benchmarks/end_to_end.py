"""Time per stage and peak memory of the demo pipeline (synthetic region -> approved flow -> release).

    .venv/bin/python benchmarks/end_to_end.py --people 200000 [--workspace DIR] [--settings FILE]

Peak memory is sampled from /proc for this process and all its children (the Spark JVM, Prefect's
temporary server), so it is what the machine actually had to hold.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import flows  # noqa: F401  (offline defaults before any library import)


def _tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of ``root_pid`` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class PeakMemory:
    def __init__(self, interval: float = 0.5):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)

    def _sample(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss_bytes(os.getpid()))
            self._stop.wait(interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--settings", type=Path, default=None)
    args = parser.parse_args()

    from flows import pipeline
    from flows.demo import ensure_demo_deployment, ensure_demo_master_secret, review_as_demo_officer
    from ig_policies.demo import DEMO_POLICY, DEMO_TRUST_STORE
    from ig_policies.workspace import Workspace
    from synthetic import generate_region

    root = args.workspace or Path(tempfile.mkdtemp(prefix="ehl-e2e-")) / "workspace"
    ws = Workspace.open(root)
    ensure_demo_master_secret(ws)
    ensure_demo_deployment(ws)
    timings: list[tuple[str, float]] = []
    pipeline.stage_listeners.append(lambda outcome: timings.append((outcome.stage, outcome.seconds)))

    with PeakMemory() as memory:
        started = time.perf_counter()
        generate_region(ws, people=args.people, seed=args.seed)
        timings.insert(0, ("synthetic region", time.perf_counter() - started))
        pipeline.approved_linkage_flow(
            workspace=str(ws.root),
            policy=str(DEMO_POLICY),
            settings=str(args.settings) if args.settings else None,
            trust_store=str(DEMO_TRUST_STORE),
        )
        review_started = time.perf_counter()
        review = review_as_demo_officer(ws)
        timings.append(("IG review and release", time.perf_counter() - review_started))
        total = time.perf_counter() - started

    print(f"people: {args.people:,}   workspace: {ws.root}")
    for stage, seconds in timings:
        print(f"{stage:<32} {seconds:8.1f} s")
    print(f"{'total (incl. Prefect overhead)':<32} {total:8.1f} s")
    print(f"released outputs: {len(review.released)}, rejected: {len(review.rejected)}")
    print(f"peak memory (process tree): {memory.peak / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
