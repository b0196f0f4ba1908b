"""Log formats: each request the gateway ends is one ``ponder.requests`` record with its id,
model, strategy, status and tokens, written as a JSON line or as human text."""

from __future__ import annotations

import json
import logging

import pytest

from ponder.backends.scripted import ScriptedBackend
from ponder.config import PonderConfig
from ponder.errors import PolicyError
from ponder.gateway import Gateway
from ponder.logs import JsonFormatter, TextFormatter, configure
from ponder.routing.registry import BackendRegistry
from tests.strategy_helpers import solution


async def test_each_request_is_one_record_with_its_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = PonderConfig(default_model="m", trace_db=":memory:", deny_models=("no",))
    registry = BackendRegistry(config)
    registry.register("m", ScriptedBackend.cycle([solution(7)]))
    registry.register("no", ScriptedBackend.cycle([solution(7)]))
    caplog.set_level(logging.INFO, logger="ponder.requests")
    async with Gateway(config, registry=registry) as gw:
        reply = await gw.chat("How many?", strategy="cot")
        with pytest.raises(PolicyError):
            await gw.chat("How many?", model="no")
    record, refused = [r for r in caplog.records if r.name == "ponder.requests"]
    assert refused.__dict__["status"] == 403 and "refused" in refused.getMessage()
    assert record.__dict__["model"] == "m" and record.__dict__["strategy"] == "cot"
    assert record.__dict__["status"] == 200 and record.__dict__["outcome"] == "ok"
    assert record.__dict__["total_tokens"] == reply.usage.total_tokens
    assert record.__dict__["request_id"].startswith("req-")
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "ponder.requests" and line["total_tokens"] == reply.usage.total_tokens
    assert "status=200" in TextFormatter().format(record)


def test_json_lines_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    # Servers started by other tests configure uvicorn's loggers; configure() resets them.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    try:
        configure(logging.INFO, "json")
        logging.getLogger("uvicorn.error").info("Started server process")
        logging.getLogger("ponder.x").warning("careful", extra={"model": "m"})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [x["message"] for x in lines] == ["Started server process", "careful"]
    assert lines[1]["level"] == "warning" and lines[1]["model"] == "m"
