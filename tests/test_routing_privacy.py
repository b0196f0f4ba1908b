"""Data protection through the whole server with the real openai SDK: with ``redact`` in a
policy, personal data in any message never reaches a non-local endpoint, and the reply the
client reads has it back, streamed or not; a local deployment gets the text as it is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ponder.config import PolicySettings, PonderConfig, ProviderConfig
from ponder.server.app import create_app
from tests.fake_openai import make_app, serve_app

ADMIN = "admin-secret"
EMAIL = "jane.doe+ops@example.com"
CARD = "4111 1111 1111 1111"
KEY = "AKIAIOSFODNN7EXAMPLE"
MESSAGES: Any = [
    {"role": "system", "content": f"Escalations go to {EMAIL}."},
    {"role": "user", "content": f"Charge card {CARD} and log in with {KEY} please"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "lookup", "arguments": f'{{"email": "{EMAIL}"}}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": f"owner of {CARD}: {EMAIL}"},
]
SECRETS = (EMAIL, CARD, KEY, "4111111111111111")


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Any]]:
    app = make_app()
    with serve_app(app) as url:
        yield url, app


def ponder(url: str, policy: PolicySettings) -> Any:
    config = PonderConfig(
        trace_db=":memory:",
        default_strategy=None,
        policy=policy,
        providers=(
            ProviderConfig(name="cloud", base_url=f"{url}/echo/v1", models=("cloud-m",)),
            ProviderConfig(name="home", base_url=f"{url}/echo/v1", models=("home-m",), local=True),
        ),
    )
    return serve_app(create_app(config, admin_key=ADMIN))


def sent_upstream(app: Any, before: int) -> str:
    return "".join(str(body) for _, body in app.state.requests[before:])


@pytest.mark.parametrize("stream", [False, True])
def test_nothing_personal_leaves_and_the_reply_has_it_back(
    upstream: tuple[str, Any], stream: bool
) -> None:
    url, app = upstream
    with (
        ponder(url, PolicySettings(redact=True)) as server,
        openai.OpenAI(base_url=f"{server}/v1", api_key=ADMIN, max_retries=0) as client,
    ):
        before = len(app.state.requests)
        if stream:
            chunks = client.chat.completions.create(
                model="cloud-m", messages=MESSAGES, max_tokens=200, stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            reply = client.chat.completions.create(
                model="cloud-m", messages=MESSAGES, max_tokens=200
            )
            text = reply.choices[0].message.content or ""
        upstream_text = sent_upstream(app, before)
        assert upstream_text  # it was sent
        for secret in SECRETS:
            assert secret not in upstream_text
        assert "<EMAIL_1>" in upstream_text  # a placeholder went instead
        # The echo model repeated the placeholders; the client reads the originals.
        assert EMAIL in text and CARD in text and KEY in text
        assert "<EMAIL_" not in text and "<CARD_" not in text


def test_a_local_deployment_gets_the_text_as_it_is(upstream: tuple[str, Any]) -> None:
    url, app = upstream
    with (
        ponder(url, PolicySettings(redact=True)) as server,
        openai.OpenAI(base_url=f"{server}/v1", api_key=ADMIN, max_retries=0) as client,
    ):
        before = len(app.state.requests)
        client.chat.completions.create(model="home-m", messages=MESSAGES, max_tokens=200)
        assert EMAIL in sent_upstream(app, before)


def test_a_key_can_ask_for_redaction(upstream: tuple[str, Any]) -> None:
    url, app = upstream
    with ponder(url, PolicySettings()) as server:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        assert httpx.post(f"{server}/v1/admin/teams", headers=admin, json={"name": "t"}).is_success
        made = httpx.post(
            f"{server}/v1/admin/keys",
            headers=admin,
            json={"team": "t", "name": "k", "policy": {"redact": True}},
        ).json()
        with openai.OpenAI(base_url=f"{server}/v1", api_key=made["key"], max_retries=0) as client:
            before = len(app.state.requests)
            reply = client.chat.completions.create(
                model="cloud-m", messages=MESSAGES, max_tokens=200
            )
            assert EMAIL not in sent_upstream(app, before)
            assert EMAIL in (reply.choices[0].message.content or "")
        # Without the key's policy the same request goes out as sent (pass-through).
        with openai.OpenAI(base_url=f"{server}/v1", api_key=ADMIN, max_retries=0) as client:
            before = len(app.state.requests)
            client.chat.completions.create(model="cloud-m", messages=MESSAGES, max_tokens=200)
            assert EMAIL in sent_upstream(app, before)
