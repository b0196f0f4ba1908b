"""The sandbox escape corpus through the weak ``process`` mode and through bwrap, side by side.

Every program in ``tests/sandbox_corpus/`` is run in each mode against decoys made for that
run (see ``tests/sandbox_harness.py``), with the same checks as ``tests/test_sandbox_corpus.py``:
secrets in the output, the canary directory, the trace database, the listeners, the decoy
server, processes left behind, the time to return, this process's memory. The table says
which attacks got out of which mode:

    python bench/sandbox_escapes.py
    python bench/sandbox_escapes.py --mode bwrap -k network -v

Safety. The weak mode really lets these programs out, so every target is a decoy this script
makes (a decoy server pid, temporary secret files, a temporary canary directory, listeners on
127.0.0.1 and ::1), and the corpus never writes to the working tree or to system files nor
sends traffic off the loopback. A few attacks cannot be made safe unconfined on a shared
machine, and are skipped in the process mode (the output lists them): the fork bomb, kill(-1)
(as root outside a PID namespace that kills every process on the machine), killing the
parent (the parent would be this script), and opening the interpreter's files for writing
(there they are the machine's real files). Processes a run leaves behind are killed after it.
The memory-hungry bombs stay within a few hundred MiB to 1 GiB each, and clean up after
themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import sys
from pathlib import Path

from ponder.sandbox import Sandbox, SandboxSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import sandbox_harness as harness

PROCESS_MODE_SKIPS = {
    "bomb_fork": "a real fork bomb, with only an audit hook in its way",
    "signal_kill_all": "kill(-1, SIGKILL) outside a PID namespace kills every process it may",
    "signal_kill_parent": "its parent would be this script",
    "write_interpreter_files": "it would open the machine's real interpreter files for writing",
}
# Where bomb_fill_outside_work writes; it deletes its files, and this makes sure of it.
_FILL_DIRS = ("/dev/shm", "/", "/dev", "/root", "/usr", "/lib")

Result = harness.Outcome | str  # an outcome, or why the attack was not run


def _remove_fill_leftovers() -> None:
    for directory in _FILL_DIRS:
        for path in glob.glob(os.path.join(directory, "ponder-corpus-fill-*")):
            with contextlib.suppress(OSError):
                os.unlink(path)


async def run_mode(mode: str, attacks: list[harness.Attack], verbose: bool) -> dict[str, Result]:
    sandbox = Sandbox(SandboxSettings(mode="process" if mode == "process" else "bwrap"))
    status = await sandbox.status()
    if not status.available:
        raise SystemExit(f"the {mode} sandbox is unavailable: {status.detail} ({status.fix})")
    results: dict[str, Result] = {}
    for attack in attacks:
        if mode == "process" and attack.name in PROCESS_MODE_SKIPS:
            results[attack.name] = f"skipped: {PROCESS_MODE_SKIPS[attack.name]}"
            continue
        try:
            outcome = await harness.run_attack(sandbox, attack)
        finally:
            if mode == "process":
                _remove_fill_leftovers()
        results[attack.name] = outcome
        mark = "ESCAPED" if outcome.escaped else "contained"
        print(f"  [{mode}] {attack.name}: {mark} ({outcome.elapsed_s:.2f} s)", file=sys.stderr)
        if verbose:
            print(outcome.report(), file=sys.stderr)
    return results


def _cell(result: Result | None) -> str:
    if result is None:
        return "-"
    if isinstance(result, str):
        return "skipped"
    return "ESCAPED" if result.escaped else "no"


def _total(results: dict[str, Result], mode: str, label: str) -> str:
    ran = [r for r in results.values() if not isinstance(r, str)]
    escaped = sum(r.escaped for r in ran)
    skipped = len(results) - len(ran)
    note = f" ({skipped} skipped as unsafe to run unconfined)" if skipped else ""
    return f"{escaped} of {len(ran)} escaped {label}{note}"


def print_table(attacks: list[harness.Attack], by_mode: dict[str, dict[str, Result]]) -> None:
    width = max(len(a.name) for a in attacks)
    header = f"{'attack':<{width}}  {'category':<8}  {'process mode':<12}  {'bwrap':<8}"
    print(header)
    print("-" * len(header))
    for attack in attacks:
        process = _cell(by_mode.get("process", {}).get(attack.name))
        bwrap = _cell(by_mode.get("bwrap", {}).get(attack.name))
        print(f"{attack.name:<{width}}  {attack.category:<8}  {process:<12}  {bwrap:<8}")
    print()
    parts = []
    if "process" in by_mode:
        parts.append(_total(by_mode["process"], "process", "the process mode"))
    if "bwrap" in by_mode:
        parts.append(_total(by_mode["bwrap"], "bwrap", "bwrap"))
    print("; ".join(parts))
    for name, reason in PROCESS_MODE_SKIPS.items():
        if isinstance(by_mode.get("process", {}).get(name), str):
            print(f"  process mode skipped {name}: {reason}")
    escapes = [r for r in by_mode.get("bwrap", {}).values() if not isinstance(r, str) and r.escaped]
    if escapes:
        print("\nEscapes from bwrap:")
        for outcome in escapes:
            for violation in outcome.violations:
                print(f"  {outcome.attack.name}: {violation[:300]}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mode", choices=("both", "process", "bwrap"), default="both", help="which modes to run"
    )
    parser.add_argument("-k", "--only", default="", help="run attacks whose name contains this")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print each run's report and output"
    )
    args = parser.parse_args()
    attacks = [a for a in harness.load_corpus() if args.only in a.name]
    if not attacks:
        raise SystemExit(f"no attack matches {args.only!r}")
    modes = ("process", "bwrap") if args.mode == "both" else (args.mode,)
    by_mode: dict[str, dict[str, Result]] = {}
    with harness.subreaper():
        for mode in modes:
            by_mode[mode] = await run_mode(mode, attacks, args.verbose)
    print_table(attacks, by_mode)


if __name__ == "__main__":
    asyncio.run(main())
