"""The ``vllm:`` backend against a vLLM-shaped server on hypercorn (another HTTP stack:
chunked streams, its own keep-alive), over plain HTTP and over TLS."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from scaleenv._agents.llm.errors import BackendError
from scaleenv._agents.llm.openai_backend import OpenAIBackend
from scaleenv._agents.llm.port import LlmRequest, render_messages, schema_for
from scaleenv._agents.rollout.answers import PolicyTurn, UserTurn
from scaleenv._agents.sim import SimBackend

from .vllm_shaped import MODEL, VllmShaped, logprob, pieces, token_id

TOOLS = ({"type": "function", "function": {"name": "get_order", "description": "Find an order.",
                                           "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}},)


async def _serve(nursery: trio.Nursery, app: VllmShaped, **config: object) -> str:
    cfg = Config()
    cfg.bind = ["127.0.0.1:0"]
    cfg.accesslog = None
    cfg.errorlog = None
    for k, v in config.items():
        setattr(cfg, k, v)
    binds = await nursery.start(partial(serve, app, cfg))
    return binds[0] + "/v1"


@pytest.fixture
def app() -> VllmShaped:
    return VllmShaped()


@pytest.fixture
async def url(nursery: trio.Nursery, app: VllmShaped) -> AsyncIterator[str]:
    yield await _serve(nursery, app)


def _user_request(i: int) -> LlmRequest:
    ctx = {"instruction": "Cancel my order o-12.", "user_facts": {"order_id": "o-12"}, "persona": "terse", "max_turns": 4}
    return LlmRequest(role="user", messages=render_messages("Play the customer.", ctx, "Open the conversation."),
                      context=ctx, seed=900 + i)


@pytest.mark.parametrize("stream", [False, True])
async def test_structured_outputs_token_ids_and_logprobs(url: str, app: VllmShaped, stream: bool) -> None:
    seen: list[object] = []
    backend = OpenAIBackend(base_url=url, model=MODEL, flavor="vllm", logprobs=True, stream=stream, on_chunk=seen.append)
    sim = SimBackend()
    schema, name = schema_for(UserTurn)
    for i in range(5):
        req = _user_request(i)
        got = await backend.complete(req, schema, name)
        want = await sim.complete(req, schema, name)
        assert got.text == want.text
        assert got.token_ids == [token_id(p) for p in pieces(got.text)]
        assert got.logprobs == [logprob(p) for p in pieces(got.text)]
        assert (got.prompt_tokens, got.completion_tokens) == (want.prompt_tokens, want.completion_tokens)
    await backend.aclose()
    assert (len(seen) > 5 * 3) is stream  # chunks as they came, when streaming
    sent = app.requests[-1]
    assert sent["structured_outputs"] == {"json": {**schema, "$defs": sent["structured_outputs"]["json"]["$defs"]}}
    assert sent["return_token_ids"] is True and sent["logprobs"] is True and "response_format" not in sent
    assert sent.get("stream", False) is stream and app.headers[-1]["x-scaleenv-role"] == "user"
    assert backend.client.pool.open_connections == 0  # closed by aclose; all calls shared one connection meanwhile


async def test_tool_calls_through_vllm(url: str) -> None:
    backend = OpenAIBackend(base_url=url, model=MODEL, flavor="vllm")
    sim = SimBackend()
    schema, name = schema_for(PolicyTurn)
    messages = [{"role": "system", "content": "You are the support agent."},
                {"role": "user", "content": "Please cancel order o-12."}]
    for i in range(8):
        req = LlmRequest(role="policy", messages=messages, context={}, tools=TOOLS, seed=40 + i)
        got = await backend.complete(req, schema, name)
        assert got.text == (await sim.complete(req, schema, name)).text
    await backend.aclose()


async def test_vllm_errors_name_the_server_and_its_message(url: str) -> None:
    backend = OpenAIBackend(base_url=url, model="no-such-model", flavor="vllm")
    schema, name = schema_for(UserTurn)
    with pytest.raises(BackendError) as info:
        await backend.complete(_user_request(0), schema, name)
    await backend.aclose()
    assert info.value.status == 404 and info.value.attempts == 1 and not info.value.retryable
    assert "no-such-model` does not exist" in str(info.value) and url in str(info.value)


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scaleenv test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https(nursery: trio.Nursery, app: VllmShaped, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path)
    url = await _serve(nursery, app, certfile=str(cert), keyfile=str(key))
    assert url.startswith("https://127.0.0.1:")
    schema, name = schema_for(UserTurn)
    untrusting = OpenAIBackend(base_url=url, model=MODEL, flavor="vllm", retries=0)
    with pytest.raises(BackendError) as info:
        await untrusting.complete(_user_request(0), schema, name)  # the system trusts no such certificate
    await untrusting.aclose()
    assert info.value.kind == "connect" and "certificate" in str(info.value).lower()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # as a user points the client at a private CA
    backend = OpenAIBackend(base_url=url, model=MODEL, flavor="vllm", stream=True)
    for i in range(3):
        got = await backend.complete(_user_request(i), schema, name)
        assert got.text == (await SimBackend().complete(_user_request(i), schema, name)).text
    await backend.aclose()
