"""Is `make test` slower? Compare two runs of the suite test by test, not only by their totals.

A suite grows: comparing two totals mixes "the same tests got slower" with "new tests were added".
This reads two pytest logs written with ``--durations=0`` (setup, call and teardown of every test)
and prints the totals, the tests both runs have (their sum in each), the tests only one run has,
the files whose shared tests changed most, and with ``--detail`` the single tests that changed most.

A session-scoped fixture's set-up is charged to the first test that uses it, so compare runs
whose test order is the same, or read the per-file sums. Produce the logs on the same idle
machine, for example with a worktree of the older commit:

    make test PYTEST_ARGS="--durations=0" > /tmp/after.log 2>&1
    (cd ../older-worktree && make test PYTEST_ARGS="--durations=0") > /tmp/before.log 2>&1
    .venv/bin/python benchmarks/suite_durations.py /tmp/before.log /tmp/after.log --detail
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

#: one line of pytest's durations report: "12.34s call     tests/unit/test_x.py::test_y"
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s (setup|call|teardown)\s+(\S+)")


def durations(log: Path) -> dict[str, float]:
    """Seconds per test (setup + call + teardown) in one pytest log."""
    per_test: dict[str, float] = defaultdict(float)
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = DURATION.match(line)
        if match:
            per_test[match.group(3)] += float(match.group(1))
    if not per_test:
        raise SystemExit(f"{log}: no test durations found; run pytest with --durations=0")
    return dict(per_test)


def _file(test: str) -> str:
    return test.split("::", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path, help="pytest log of the older run (--durations=0)")
    parser.add_argument("after", type=Path, help="pytest log of the newer run (--durations=0)")
    parser.add_argument("--detail", action="store_true", help="also list the tests that changed most")
    args = parser.parse_args()

    before, after = durations(args.before), durations(args.after)
    both = sorted(set(before) & set(after))
    only_before = sorted(set(before) - set(after))
    only_after = sorted(set(after) - set(before))

    def total(d: dict[str, float], tests) -> float:
        return sum(d[t] for t in tests)

    print(f"{'':28s} {'tests':>6s} {'before s':>9s} {'after s':>9s}")
    print(f"{'all':28s} {'':>6s} {sum(before.values()):9.0f} {sum(after.values()):9.0f}")
    print(f"{'in both runs':28s} {len(both):6d} {total(before, both):9.0f} {total(after, both):9.0f}")
    print(f"{'only in the older run':28s} {len(only_before):6d} {total(before, only_before):9.0f} {'':>9s}")
    print(f"{'only in the newer run':28s} {len(only_after):6d} {'':>9s} {total(after, only_after):9.0f}")

    by_file_before: dict[str, float] = defaultdict(float)
    by_file_after: dict[str, float] = defaultdict(float)
    for test in both:
        by_file_before[_file(test)] += before[test]
        by_file_after[_file(test)] += after[test]
    changed = sorted(by_file_before, key=lambda f: -abs(by_file_after[f] - by_file_before[f]))
    print("\nshared tests by file, largest changes first (seconds before -> after):")
    for name in changed[:15]:
        print(f"  {by_file_before[name]:7.1f} -> {by_file_after[name]:7.1f}  {name}")

    if args.detail:
        print("\nshared tests that changed most:")
        for test in sorted(both, key=lambda t: -abs(after[t] - before[t]))[:20]:
            print(f"  {before[test]:7.1f} -> {after[test]:7.1f}  {test}")
        print("\nslowest tests only in the newer run:")
        for test in sorted(only_after, key=lambda t: -after[t])[:20]:
            print(f"  {after[test]:7.1f}  {test}")


if __name__ == "__main__":
    main()
