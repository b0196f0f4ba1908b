"""The cases of ``bench/faults.py``: what each fires (1a to 4, run alike by
:meth:`faults_harness.Bench.case`), and case 5, which kills Ponder with ``kill -9`` while
requests are in flight and restarts it on the same database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter

from faults_endpoint import HANG_CAP
from faults_harness import Bench, Req, Result
from faults_ponder import COT, PATIENT, PLAIN, RETRY, VLLM, VOTE


def cases() -> list[tuple[str, str, list[Req]]]:
    return [
        (
            "1a",
            "backend dies mid-stream, pass-through, usage only at the end (OpenAI)",
            [Req(PLAIN, True, f"cut={k}") for k in (1, 4, 7)],
        ),
        (
            "1b",
            "backend dies mid-stream, pass-through, usage on every chunk (vLLM)",
            [Req(VLLM, True, f"cut={k}") for k in (1, 4, 7)],
        ),
        (
            "1c",
            "backend dies before replying: pass-through and cot, streamed or not",
            [
                Req(PLAIN, False, "cut=0"),
                Req(VLLM, False, "cut=0"),
                Req(COT.format(PLAIN), False, "cut=0"),
                Req(COT.format(PLAIN), True, "cut=0"),
                Req(COT.format(VLLM), True, "cut=0"),
            ],
        ),
        (
            "1d",
            "backend dies mid-stream under a strategy that streams (confidence-vote), + control",
            [
                Req(VOTE.format(PLAIN), False, "scut=3"),
                Req(VOTE.format(VLLM), False, "scut=3"),
                Req(VOTE.format(VLLM), True, "scut=5"),
                Req(VOTE.format(PLAIN), False, "tokens=6"),
                Req(VOTE.format(VLLM), True, "tokens=6"),
            ],
        ),
        (
            "2a",
            "client leaves mid-stream, pass-through",
            [
                Req(PLAIN, True, "pace=30", max_tokens=40, leave_events=3),
                Req(PLAIN, True, "pace=30", max_tokens=40, leave_events=6),
                Req(VLLM, True, "pace=30", max_tokens=40, leave_events=3),
                Req(VLLM, True, "pace=30", max_tokens=40, leave_events=6),
            ],
        ),
        (
            "2b",
            "client leaves mid-stream, cot (the endpoint still working)",
            [Req(COT.format(m), True, "delay=1500", leave_events=1) for m in (PLAIN, VLLM)],
        ),
        (
            "2c",
            "client leaves mid-request (not streamed), pass-through and cot",
            [
                Req(m, False, "delay=800", leave_after=0.25)
                for m in (PLAIN, VLLM, COT.format(PLAIN), COT.format(VLLM))
            ],
        ),
        (
            "3",
            "endpoint hangs past the provider's timeout, before replying and mid-stream",
            [
                Req(PLAIN, False, "hang=0"),
                Req(PLAIN, True, "hang=0"),
                Req(PLAIN, True, "hang=3"),
                Req(VLLM, True, "hang=3"),
                Req(COT.format(PLAIN), False, "hang=0"),
                Req(COT.format(VLLM), True, "hang=0"),
                Req(VOTE.format(VLLM), False, "shang=3"),
            ],
        ),
        (
            "4",
            "a burst of 503s: relayed by pass-through, retried by the SDK (retry/m)",
            [
                *(Req(m, s, "fail=1") for m in (PLAIN, VLLM) for s in (False, True)),
                Req(COT.format(PLAIN), False, "fail=1"),
                Req(COT.format(RETRY), False, "fail=2"),
                Req(COT.format(RETRY), True, "fail=2"),
                Req(PLAIN, True, "fail=0"),
                Req(VLLM, False, "fail=0"),
            ],
        ),
    ]


async def kill_case(bench: Bench) -> Result:
    """Case 5: requests finished, requests in flight, ``kill -9``, a restart on the same
    database, and requests after it."""
    case, repeat = "5", bench.args.repeat
    before = bench.tagged(
        f"{case}pre",
        [
            Req(PLAIN, True),
            Req(VLLM, False),
            Req(COT.format(PLAIN), False),
            Req(VLLM, True, "cut=2"),
        ],
    )
    # Still running when Ponder is killed: streams of 12 s, replies after 20 s (on a provider
    # whose timeout is longer than that).
    slow, late = "pace=60", "delay=20000"
    in_flight_kinds = [
        Req(PLAIN, True, slow, max_tokens=200),
        Req(PLAIN, True, slow, max_tokens=200),
        Req(VLLM, True, slow, max_tokens=200),
        Req(VLLM, True, slow, max_tokens=200),
        Req(PATIENT, False, late),
        Req(COT.format(PATIENT), False, late),
    ]
    flight = bench.tagged(f"{case}fly", [dataclasses.replace(r) for r in in_flight_kinds * repeat])
    after = bench.tagged(
        f"{case}post", [Req(PLAIN, True), Req(VLLM, True, "cut=3"), Req(COT.format(VLLM), True)]
    )
    reqs = before + flight + after
    keys = await bench.keys_for(case, reqs)

    outcomes = await bench.fire(before)
    await bench.quiet(keys, len(before))
    committed = {r[0]: r for r in bench.query("SELECT * FROM requests")}

    progress: Counter[int] = Counter()
    streams = [i for i, r in enumerate(flight) if r.stream]
    task = asyncio.ensure_future(
        bench.fire(
            flight,
            seen=lambda i, events: progress.update({i: events - progress[i]}),
            deadline=HANG_CAP,  # they wait for the kill, which comes within 15 s
        )
    )
    # Kill once every stream has sent a few chunks and every request has reached the fake,
    # or a second later (a strategy's requests past RemoteBackend's max_fanout = 16 slots
    # per model queue inside Ponder: in flight all the same).
    deadline = time.monotonic() + 15
    streaming_since = None
    while time.monotonic() < deadline and not task.done():
        begun = (await bench.served([r.tag for r in flight]))["requests"]
        if streaming_since is None and all(progress[i] >= 3 for i in streams):
            streaming_since = time.monotonic()
        if streaming_since is not None and (
            begun >= len(flight) or time.monotonic() > streaming_since + 1
        ):
            break
        await asyncio.sleep(0.02)
    killed_at = time.perf_counter()
    bench.ponder.kill9()
    in_flight = await task
    died_in = time.perf_counter() - killed_at
    # The fake sees every connection close; then what the dead process was served is known.
    limit = time.monotonic() + 10
    while time.monotonic() < limit:
        if not (await bench.stats())["active"]:
            break
        await asyncio.sleep(0.05)
    lost_served = await bench.served([r.tag for r in flight])
    lost = (lost_served["prompt_tokens"], lost_served["completion_tokens"])

    started = time.perf_counter()
    bench.ponder.start()
    restart = time.perf_counter() - started
    after_rows = {r[0]: r for r in bench.query("SELECT * FROM requests")}
    missing = [rid for rid in committed if rid not in after_rows]
    changed = [
        rid for rid, row in committed.items() if rid in after_rows and after_rows[rid] != row
    ]
    held = [bench.holds(key)[1] for key in keys]
    open_holds = bench.query(
        "SELECT count(*), coalesce(sum(tokens), 0) FROM reservations WHERE state = 'open' "
        f"AND key_id IN ({', '.join('?' for _ in keys)})",
        *(key.id for key in keys),
    )[0]

    outcomes_after = await bench.fire(after)
    await bench.quiet(keys, len(before) + len(after))

    dropped_ok = frozenset(range(len(before), len(before) + len(flight)))
    result = await bench.settle(
        case,
        "Ponder killed (-9) with requests in flight, restarted on the same database",
        keys,
        reqs,
        outcomes + in_flight + outcomes_after,
        dropped_ok=dropped_ok,
    )
    # The restart records the requests in flight from the dead process's journal (outcome
    # "interrupted"): every request has its row, and what the endpoint reported to the dead
    # process is in it. What it never reported (a plain stream's prompt and tokens) stays
    # unreported, as in the cases without a kill.
    # Reported chunks the endpoint wrote that the killed process never read: at most one
    # per stream in flight (each waits 60 ms between chunks). More than that is a miss.
    in_transit = result.floor[1] - result.ledger[1]
    if result.ledger[0] == result.floor[0] and 0 < in_transit <= len(streams):
        result.lost = (0, in_transit)
    interrupted = bench.query("SELECT count(*) FROM requests WHERE outcome = 'interrupted'")[0][0]
    if interrupted != len(flight):
        result.problems.append(f"{interrupted} interrupted rows, expected {len(flight)}")
    if missing or changed:
        result.problems.append(
            f"{len(missing)} committed rows lost and {len(changed)} changed across the restart"
        )
    if open_holds[0]:
        result.problems.append(
            f"{open_holds[0]} reservations still open after the restart, holding {open_holds[1]}"
        )
    ended = [o for o in in_flight if o.kind != "dropped"]
    if ended:
        result.problems.append(
            f"bench: {len(ended)} requests meant to be in flight ended before the kill "
            f"({Counter(o.kind for o in ended)})"
        )
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(Counter(o.kind for o in in_flight).items()))
    reported = sum(lost) - lost_served["unreported_prompt"] - lost_served["unreported_completion"]
    result.notes.append(
        f"{len(committed)} ledger rows (all keys) read before the kill: {len(missing)} missing, "
        f"{len(changed)} changed after the restart; restart {restart:.1f} s"
    )
    result.notes.append(
        f"{len(flight)} requests in flight at the kill ({kinds}; all clients done "
        f"{died_in:.2f} s after it): the fake served them {sum(lost)} tokens and reported "
        f"{reported} of them; {interrupted} rows recorded from the journal at the restart"
    )
    result.notes.append(
        f"never reported by the endpoint: {result.unreported[0]} prompt + "
        f"{result.unreported[1]} completion tokens; what was reported: {result.floor[0]} + "
        f"{result.floor[1]}"
    )
    result.notes.append(
        f"reservations open after the restart: {open_holds[0]} (the keys' budgets hold "
        f"{sum(held)} tokens)"
    )
    return result
