"""One case of ``bench/faults.py``: its requests (:class:`Req`), each case's key, firing the
requests at once, waiting until the fake and the ledger are quiet, and settling the case
(:class:`Result`): what the ledger holds against what the fake served, the key's budget or
rate limit, and how each client's request ended.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from faults_client import Outcome, call
from faults_ponder import ADMIN, COT, PLAIN, Ponder

BUDGET = 50_000_000  # tokens: never reached, so that every request is admitted
CLEAN = {"ok", "error", "cut+error", "left"}


# -- a request, a key, a case's result ----------------------------------------------------
@dataclass(frozen=True)
class Key:
    id: str
    secret: str
    budget: bool  # a token budget; else a rate limit alone


@dataclass
class Req:
    model: str
    stream: bool
    fault: str = ""  # the directive, less its tag
    max_tokens: int = 12
    leave_events: int | None = None
    leave_after: float | None = None
    tag: str = ""
    key: Key = field(default_factory=lambda: Key("", "", True))

    def body(self) -> dict[str, Any]:
        text = f"Count for me please. [fault tag={self.tag} {self.fault}]"
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": text}],
            "max_tokens": self.max_tokens,
        }
        if self.stream:
            body["stream"] = True
        return body


@dataclass
class Result:
    """One case's tokens, each as (prompt, completion): what the ledger holds, what the fake
    served, what of that it never reported, and what it served to requests in flight in a
    process that was killed."""

    case: str
    title: str
    requests: int
    ledger: tuple[int, int]
    served: tuple[int, int]
    unreported: tuple[int, int]
    lost: tuple[int, int] = (0, 0)
    slowest: float = 0.0  # seconds, the slowest client's
    outcomes: Counter[str] = field(default_factory=Counter)
    unclean: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def difference(self) -> int:
        return sum(self.ledger) - sum(self.served)

    @property
    def floor(self) -> tuple[int, int]:
        """What the ledger can hold at least: what was reported to a process that lived."""
        return (
            self.served[0] - self.unreported[0] - self.lost[0],
            self.served[1] - self.unreported[1] - self.lost[1],
        )

    @property
    def recovered(self) -> int:
        """Unreported completion tokens the ledger holds anyway (counted from logprobs)."""
        return self.ledger[1] - self.floor[1]

    @property
    def clean(self) -> bool:
        return not self.unclean

    @property
    def verdict(self) -> str:
        if self.problems:
            return "MISSED"
        if self.ledger == self.served:
            return "exact"
        # Every reported token, and what was never reported charged by Ponder's estimate,
        # which errs high (the prompt's upper bound; a token per delta of text received).
        if (
            self.ledger[0] >= self.served[0]
            and self.ledger[1] >= self.served[1]
            and self.floor[0] <= self.ledger[0]
        ):
            return "estimated"
        # Only a report can give the prompt's tokens; the completion's may be counted.
        prompt_floor, completion_floor = self.floor
        if self.ledger[0] == prompt_floor and completion_floor <= self.ledger[1] <= self.served[1]:
            return "gap"
        return "MISSED"


# -- the harness --------------------------------------------------------------------------
class Bench:
    """The cases' side of a run: keys made through Ponder's admin API, the ledger and the
    store read back, what the fake served, and requests fired at Ponder."""

    def __init__(self, args: argparse.Namespace, fake_port: int, db: Path, ponder: Ponder):
        self.args = args
        self.fake = f"http://127.0.0.1:{fake_port}"
        self.db = db
        self.ponder = ponder
        self.http = httpx.AsyncClient(timeout=30)
        self.cot_budgeted = True
        self.findings: list[str] = []

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- Ponder's side --------------------------------------------------------------------
    async def new_key(self, name: str, *, budget: bool = True) -> Key:
        """A team and a key with a token budget, or (``budget=False``) with a rate limit
        alone: either way each request reserves, then settles."""
        admin = {"Authorization": f"Bearer {ADMIN}"}
        team = f"faults-{name}-{secrets.token_hex(3)}"
        base = self.ponder.base
        made = await self.http.post(f"{base}/v1/admin/teams", json={"name": team}, headers=admin)
        made.raise_for_status()
        made = await self.http.post(
            f"{base}/v1/admin/keys", json={"team": team, "name": team}, headers=admin
        )
        made.raise_for_status()
        key = Key(made.json()["id"], made.json()["key"], budget)
        owner = {"scope": "key", "owner": key.id}
        if budget:
            limit = {**owner, "unit": "tokens", "period": "total", "limit": BUDGET}
            made = await self.http.put(f"{base}/v1/admin/budgets", json=limit, headers=admin)
        else:
            limit = {**owner, "rpm": 1_000_000, "tpm": 1_000_000_000}
            made = await self.http.put(f"{base}/v1/admin/rate_limits", json=limit, headers=admin)
        made.raise_for_status()
        return key

    async def keys_for(self, case: str, reqs: list[Req]) -> list[Key]:
        """The case's budget key, and a rate-limited one for cot if cot cannot run under a
        budget (see :meth:`preflight`); each request is given its key."""
        keys = [await self.new_key(case)]
        if not self.cot_budgeted and any(r.model.startswith("ponder/cot/") for r in reqs):
            keys.append(await self.new_key(f"{case}-limit", budget=False))
        for req in reqs:
            cot = req.model.startswith("ponder/cot/")
            req.key = keys[-1] if cot and not self.cot_budgeted else keys[0]
        return keys

    async def preflight(self) -> None:
        """Whether ``ponder/cot`` runs under a token budget at all (its declared worst case
        must cover its own call's, which the per-request cap checks)."""
        key = await self.new_key("preflight")
        req = Req(COT.format(PLAIN), False, tag="preflight")
        req.key = key
        (outcome,) = await self.fire([req])
        self.cot_budgeted = outcome.kind == "ok"
        if not self.cot_budgeted:
            self.findings.append(
                f"ponder/cot/... is refused under ANY token budget: {outcome.status} "
                f"{outcome.detail!r}. cot's worst_case (prompt_token_bound(COT_SYSTEM), the "
                "system prompt counted as extra text) is short of the guard's bound for the "
                "call it makes (COT_SYSTEM as one more message: TEMPLATE_TOKENS_PER_MESSAGE "
                "more; or 2 bytes more, '\\n\\n', when the client sent a system message). "
                "So cot requests here use a key with a rate limit and no budget (they still "
                "reserve and settle)"
            )

    async def ledger(self, keys: list[Key]) -> Counter[str]:
        """The ledger's totals for these keys, each read with the key itself."""
        total: Counter[str] = Counter()
        for key in keys:
            reply = await self.http.get(
                f"{self.ponder.base}/v1/usage",
                params={"group_by": "key"},
                headers={"Authorization": f"Bearer {key.secret}"},
            )
            reply.raise_for_status()
            for row in reply.json()["data"]:
                if row["key"] == key.id:
                    total.update(
                        {
                            k: v
                            for k, v in row.items()
                            if k in ("requests", "prompt_tokens", "completion_tokens")
                        }
                    )
        return total

    async def all_usage(self) -> dict[str, tuple[int, int, int]]:
        reply = await self.http.get(
            f"{self.ponder.base}/v1/usage",
            params={"group_by": "key"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        reply.raise_for_status()
        return {
            r["key"]: (r["requests"], r["prompt_tokens"], r["completion_tokens"])
            for r in reply.json()["data"]
        }

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """The database itself, read-only (the ledger rows, the budget's counters)."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def holds(self, key: Key) -> tuple[int | None, int]:
        """The key's budget's (spent, reserved), or (None, reserved) for its rate limit."""
        if key.budget:
            (row,) = self.query(
                "SELECT spent, reserved FROM budgets WHERE scope = 'key' AND owner = ?", key.id
            )
            return int(row[0]), int(row[1])
        (row,) = self.query(
            "SELECT reserved_tokens FROM rate_limits WHERE scope = 'key' AND owner = ?", key.id
        )
        return None, int(row[0])

    # -- the fake's side ------------------------------------------------------------------
    async def stats(self) -> dict[str, Any]:
        reply = await self.http.get(f"{self.fake}/stats")
        reply.raise_for_status()
        return dict(reply.json())

    async def served(self, tags: list[str]) -> Counter[str]:
        got = (await self.stats())["served"]
        total: Counter[str] = Counter()
        for tag in tags:
            total.update(got.get(tag, {}))
        return total

    async def quiet(self, keys: list[Key], requests: int, limit: float = 20.0) -> None:
        """Wait (bounded) until the fake has no request open and the ledger has a row for
        each of ``requests``."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            idle = (await self.stats())["active"] == 0
            if idle and (await self.ledger(keys))["requests"] >= requests:
                return
            await asyncio.sleep(0.05)

    # -- running --------------------------------------------------------------------------
    def tagged(self, case: str, reqs: list[Req]) -> list[Req]:
        for i, req in enumerate(reqs):
            req.tag = f"{case}-{i}-{secrets.token_hex(2)}"
        return reqs

    async def fire(
        self,
        reqs: list[Req],
        seen: Callable[[int, int], None] | None = None,
        deadline: float | None = None,
    ) -> list[Outcome]:
        """Send ``reqs`` at once, each on its own connection; a client that hears nothing
        that ends its request by ``deadline`` (the timeout plus ``--deadline``) hangs."""
        deadline = deadline or self.args.timeout + self.args.deadline

        def watcher(i: int) -> Callable[[int], None] | None:
            return (lambda events: seen(i, events)) if seen is not None else None

        return list(
            await asyncio.gather(
                *(
                    call(
                        self.ponder.port,
                        r.key.secret,
                        r.body(),
                        deadline=deadline,
                        leave_events=r.leave_events,
                        leave_after=r.leave_after,
                        seen=watcher(i),
                    )
                    for i, r in enumerate(reqs)
                )
            )
        )

    async def case(self, case: str, title: str, reqs: list[Req]) -> Result:
        reqs = self.tagged(case, [dataclasses.replace(r) for r in reqs * self.args.repeat])
        keys = await self.keys_for(case, reqs)
        outcomes = await self.fire(reqs)
        await self.quiet(keys, len(reqs))
        return await self.settle(case, title, keys, reqs, outcomes)

    async def settle(
        self,
        case: str,
        title: str,
        keys: list[Key],
        reqs: list[Req],
        outcomes: list[Outcome],
        *,
        lost: tuple[int, int] = (0, 0),
        dropped_ok: frozenset[int] = frozenset(),
    ) -> Result:
        row = await self.ledger(keys)
        served = await self.served([r.tag for r in reqs])
        result = Result(
            case=case,
            title=title,
            requests=len(reqs),
            ledger=(int(row["prompt_tokens"]), int(row["completion_tokens"])),
            served=(served["prompt_tokens"], served["completion_tokens"]),
            unreported=(served["unreported_prompt"], served["unreported_completion"]),
            lost=lost,
        )
        for i, (req, outcome) in enumerate(zip(reqs, outcomes, strict=True)):
            result.outcomes[outcome.kind] += 1
            result.slowest = max(result.slowest, outcome.seconds)
            fine = outcome.kind in CLEAN or (i in dropped_ok and outcome.kind == "dropped")
            if not fine:
                result.unclean.append(
                    f"{req.model} stream={req.stream} [{req.fault}]: {outcome.kind} after "
                    f"{outcome.seconds:.2f} s, {outcome.events} chunks {outcome.detail}".rstrip()
                )
            if self.args.verbose:
                print(
                    f"    {case} {req.model:<48} stream={req.stream!s:<5} [{req.fault:<26}] "
                    f"{outcome.kind:<9} {outcome.status:>3} {outcome.seconds:5.2f} s "
                    f"{outcome.events:>3} ch {outcome.detail[:70]}"
                )
        late = [
            o.seconds
            for i, o in enumerate(outcomes)
            if i not in dropped_ok and o.kind != "hang" and o.seconds > self.args.timeout + 0.5
        ]
        if late:
            result.notes.append(
                f"{len(late)} clients answered more than 0.5 s past the provider's timeout "
                f"(up to {max(late):.2f} s): time spent in Ponder before or after the "
                "upstream call (admission, queueing, the ledger), which no timeout bounds"
            )
        if int(row["requests"]) != len(reqs):
            result.problems.append(f"{row['requests']} ledger rows for {len(reqs)} requests")
        for key in keys:
            spent, reserved = self.holds(key)
            if spent is not None:
                mine = await self.ledger([key])
                own = mine["prompt_tokens"] + mine["completion_tokens"]
                if spent != own:
                    result.problems.append(f"budget spent {spent} != its key's ledger {own}")
            if reserved and not any(lost):
                what = "budget" if key.budget else "rate limit"
                result.problems.append(f"the key's {what} still holds {reserved} tokens")
        return result
