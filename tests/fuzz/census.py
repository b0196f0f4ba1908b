"""How both fuzzers drive Hypothesis: a census, then a shrinking re-run of each problem.

A census sends every case once, from a fixed seed, and keeps what it finds in a
:class:`~tests.fuzz.findings.Report`. Then each problem worth a minimal reproduction is met
again from the same seed and settings (so the same cases come up) with Hypothesis's shrink
phase on: the case that meets the problem raises, and Hypothesis shrinks it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import suppress

from hypothesis import HealthCheck, Phase, Verbosity, settings

from tests.fuzz.findings import SERVER_SIDE, Finding

SEED = 20_250_611
# Seconds a single request may take before it counts as a hang.
TIMEOUT = 30.0
# What is shrunk after the census: not a hang, each try of which would wait out the timeout.
SHRUNK = SERVER_SIDE - {"hang"}

# A problem a re-run aims at: its kind and signature.
Target = tuple[str, str]
OnFound = Callable[[Finding], None]


def run_settings(examples: int, *, shrinking: bool) -> settings:
    """The settings of one fuzzing run of ``examples`` cases: no example database, deadline
    or health check, nothing printed; a census only generates, a re-run also shrinks."""
    return settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate, Phase.shrink) if shrinking else (Phase.generate,),
        verbosity=Verbosity.quiet,
        print_blob=False,
        report_multiple_bugs=False,
    )


def pass_on(found: Iterable[Finding], target: Target | None, on_found: OnFound) -> None:
    """Hand on what one case found: all of it in a census (no ``target``); in a re-run only
    the targeted problem, and then fail the case so that Hypothesis shrinks it."""
    for finding in found:
        if target is None:
            on_found(finding)
        elif (finding.kind, finding.signature) == target:
            on_found(finding)
            raise AssertionError(finding.signature)


def shrink_each(findings: Iterable[Finding], rerun: Callable[[Finding, OnFound], object]) -> None:
    """Give each finding the minimal reproduction that ``rerun`` (the census's run again,
    aimed at that finding, handing each case that meets it to its second argument) shrank
    it to; a finding that the re-run does not meet keeps its first reproduction."""
    for finding in findings:
        shrunk: list[Finding] = []
        with suppress(Exception):
            rerun(finding, shrunk.append)
        if shrunk:
            finding.minimal = shrunk[-1].reproduction
