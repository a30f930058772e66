"""The ratio table of run_store.sh: ours (store.py) against the peer (peer_eventsourcing.py).

    python tests/benchmarks/ratios.py OURS_OUTPUT PEER_OUTPUT

Both files hold `metric: value` lines (events per second). Only ratios are meant to be
compared across runs and machines; the absolute figures are printed for reference.
"""

from __future__ import annotations

import sys
from pathlib import Path

SUFFIXES = ("append_single", "append_batched", "append_concurrent", "read_decoded")
GOAL = 5.0  # ours concurrent / peer single


def parse(path: Path) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            metrics[name.strip()] = float(value)
    return metrics


def ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "n/a"
    return f"{numerator / denominator:.2f}x"


def table(ours: dict[str, float], peer: dict[str, float]) -> list[str]:
    lines: list[str] = []
    for backend in ("sqlite", "postgres"):
        if f"{backend}_append_single_events_per_sec" not in ours:
            continue
        lines.append(f"{backend}:")
        lines.append(f"  {'metric':<34}{'ours/s':>12}{'peer/s':>12}{'ours/peer':>12}")
        for suffix in SUFFIXES:
            name = f"{backend}_{suffix}_events_per_sec"
            mine, theirs = ours.get(name), peer.get(f"peer_{name}")
            lines.append(
                f"  {suffix:<34}{mine or 0:>12.0f}{theirs or 0:>12.0f}{ratio(mine, theirs):>12}"
            )
        concurrent = ours.get(f"{backend}_append_concurrent_events_per_sec")
        single = ours.get(f"{backend}_append_single_events_per_sec")
        peer_single = peer.get(f"peer_{backend}_append_single_events_per_sec")
        raw = ours.get(f"{backend}_raw_commit_per_sec")
        goal = ""
        if concurrent and peer_single:
            goal = "  (goal >= 5x: " + ("met)" if concurrent / peer_single >= GOAL else "NOT met)")
        lines.append(
            f"  ours concurrent / peer single:      {ratio(concurrent, peer_single)}{goal}"
        )
        lines.append(f"  raw commit ceiling / peer single:   {ratio(raw, peer_single)}")
        lines.append(f"  ours single / raw commit ceiling:   {ratio(single, raw)}")
        lines.append(f"  ours concurrent / ours single:      {ratio(concurrent, single)}")
        peer_concurrent = peer.get(f"peer_{backend}_append_concurrent_events_per_sec")
        lines.append(f"  peer concurrent / peer single:      {ratio(peer_concurrent, peer_single)}")
    return lines


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: ratios.py OURS_OUTPUT PEER_OUTPUT")
    ours, peer = parse(Path(sys.argv[1])), parse(Path(sys.argv[2]))
    print("\n".join(table(ours, peer)))


if __name__ == "__main__":
    main()
