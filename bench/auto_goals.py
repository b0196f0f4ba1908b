"""Check the adaptive controller's goals against a bench run's records, paired.

The goals (issue "Adaptive compute"), each judged on the questions that every row involved
has finished, so that the comparison is paired:

  1. ``auto`` at its default effort is within 1 point of ``self-consistency;n=16`` using at
     most 25% of its mean total tokens per question;
  2. ``auto`` at effort ``minimal`` costs at most 1.5x the tokens of ``cot`` and is at least
     as accurate;
  3. no fixed strategy or external system dominates an ``auto`` row (as accurate or better
     with no more tokens, and strictly better on one of the two).

    python bench/auto_goals.py bench/results/gsm8k-train-0-99
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ponder.bench.report import Summary, finished_by_all, summarize
from ponder.bench.runner import RunDir

DEFAULT = "auto;effort=medium"
REFERENCE = "self-consistency;n=16"


def dominates(other: Summary, row: Summary) -> bool:
    return (
        other.accuracy >= row.accuracy
        and other.total_tokens <= row.total_tokens
        and (other.accuracy > row.accuracy or other.total_tokens < row.total_tokens)
    )


def check(run_dir: Path, default: str = DEFAULT) -> list[str]:
    records = RunDir(run_dir).records()
    common = finished_by_all(records, list(dict.fromkeys(r.system for r in records)))
    rows = {s.system: s for s in summarize([r for r in records if r.example_id in common])}
    lines = [f"paired on the {len(common)} questions every row finished", ""]

    def need(name: str) -> Summary | None:
        if name not in rows:
            lines.append(f"- {name}: no records, goal not checked")
        return rows.get(name)

    auto, reference = need(default), need(REFERENCE)
    if auto and reference:
        # Rounded: 78/100 - 79/100 is -1.0000000000000009 points in floating point.
        gap = round((auto.accuracy - reference.accuracy) * 100, 6)
        share = auto.total_tokens / reference.total_tokens
        ok = gap >= -1.0 and share <= 0.25
        lines.append(
            f"- goal 1 {'met' if ok else 'MISSED'}: {default} {auto.accuracy:.1%} at "
            f"{auto.total_tokens:.0f} tokens against {REFERENCE} {reference.accuracy:.1%} at "
            f"{reference.total_tokens:.0f}: {gap:+.1f} points (goal >= -1.0), "
            f"{share:.1%} of its tokens (goal <= 25%)"
        )
    minimal, cot = need("auto;effort=minimal"), need("cot")
    if minimal and cot:
        ratio = minimal.total_tokens / cot.total_tokens
        gap = round((minimal.accuracy - cot.accuracy) * 100, 6)
        ok = ratio <= 1.5 and gap >= 0.0
        lines.append(
            f"- goal 2 {'met' if ok else 'MISSED'}: auto minimal {minimal.accuracy:.1%} at "
            f"{minimal.total_tokens:.0f} tokens against cot {cot.accuracy:.1%} at "
            f"{cot.total_tokens:.0f}: {ratio:.2f}x its tokens (goal <= 1.5x), "
            f"{gap:+.1f} points (goal >= 0)"
        )
    fixed = [s for name, s in rows.items() if not name.startswith("auto")]
    for name, row in rows.items():
        if not name.startswith("auto"):
            continue
        over = [o.system for o in fixed if dominates(o, row)]
        verdict = "on the frontier" if not over else "DOMINATED by " + ", ".join(over)
        lines.append(
            f"- goal 3, {name} ({row.accuracy:.1%} at {row.total_tokens:.0f} tokens): {verdict}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--default", default=DEFAULT, help="the row for auto's default effort")
    args = parser.parse_args(argv)
    print("\n".join(check(args.run_dir, args.default)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
