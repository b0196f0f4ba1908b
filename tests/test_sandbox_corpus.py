"""The escape corpus (tests/sandbox_corpus/) against the bwrap sandbox: every attack must stay
contained.

Each file is a hostile program written the way a model could write it; the harness
(tests/sandbox_harness.py) points it at decoys made for that one run (a trace database
holding a secret, a canary directory, a decoy server process with an API key in its
environment, loopback listeners) and then checks that none of them was read, written,
signalled or reached, that nothing the run started is still alive, that the run returned in
time, and that this process did not grow. ``bench/sandbox_escapes.py`` runs the same corpus
through the weak ``process`` mode too, to show that the attacks are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ponder.sandbox import Sandbox, SandboxSettings
from tests import sandbox_harness as harness

ATTACKS = harness.load_corpus()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(SandboxSettings(mode="bwrap"))
    status = asyncio.run(box.status())
    # Fail, never skip: a machine where the sandbox cannot start must not pass this file.
    assert status.available, f"the bwrap sandbox is unavailable: {status.detail} ({status.fix})"
    with harness.subreaper():
        yield box


def test_corpus_covers_every_category() -> None:
    assert len(ATTACKS) >= 45
    assert {a.category for a in ATTACKS} == set(harness.CATEGORIES)
    for attack in ATTACKS:
        assert attack.source().startswith('"""'), attack.name


@pytest.mark.timeout(60)
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
async def test_attack_is_contained(sandbox: Sandbox, attack: harness.Attack) -> None:
    outcome = await harness.run_attack(sandbox, attack)
    assert not outcome.violations, outcome.report()
