"""A short built-in CPU workload, for the demo and for trying ``wattprint measure``.

``python -m wattprint._cli_workload --seconds 3`` keeps one core busy for about that long with
integer arithmetic and prints how many rounds it did.
"""

from __future__ import annotations

import argparse
import time


def busy(seconds: float) -> int:
    """Keep one core busy for about ``seconds``; return the rounds done."""
    deadline = time.perf_counter() + seconds
    rounds = 0
    acc = 0
    while time.perf_counter() < deadline:
        for i in range(10_000):
            acc = (acc + i * i) % 1_000_003
        rounds += 1
    return rounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wattprint._cli_workload",
                                     description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to run")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be > 0")
    rounds = busy(args.seconds)
    print(f"workload: {rounds} rounds in {args.seconds:g} s")


if __name__ == "__main__":
    main()
