"""`/v1/messages` and `/v1/responses` through the deployed ingress on Ray Serve: the official
SDKs against Serve's proxy, the pool behind a handle, conversations kept in the store."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import openai
import pytest

from tests.integration.conftest import Deployed

pytestmark = pytest.mark.ray

KEY = "sk-llmgw-integration-apis-0123456789"

CONFIG = {
    "providers": [{"name": "sim", "type": "sim", "sim": {"seed": 7, "output_tokens": 6}}],
    "models": [
        {"name": "sim-chat", "provider": "sim", "capabilities": ["chat", "streaming", "tools"]}
    ],
    "routing": {"retries": {"max_attempts": 1}},
}


@pytest.fixture(scope="module")
def gateway(
    serve_gateway: Callable[..., Deployed], monkeypatch_module: pytest.MonkeyPatch
) -> Deployed:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    return serve_gateway(CONFIG)


def test_messages_through_serve(gateway: Deployed) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
    hello = [{"role": "user", "content": "Hello"}]
    message = client.messages.create(model="sim-chat", max_tokens=32, messages=hello)
    assert message.content[0].text and message.usage.output_tokens == 6
    with client.messages.stream(model="sim-chat", max_tokens=32, messages=hello) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text and final.stop_reason == "end_turn"
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages", body={"model": "sim-chat", "messages": hello}, cast_to=object)
    assert caught.value.body["error"]["message"] == "max_tokens: Field required"


def test_responses_conversation_through_serve(gateway: Deployed) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)
    first = client.responses.create(model="sim-chat", input="My name is Ada.")
    events = list(
        client.responses.create(
            model="sim-chat", input="And yours?", previous_response_id=first.id, stream=True
        )
    )
    assert events[-1].type == "response.completed"
    second = events[-1].response
    assert second.previous_response_id == first.id and second.output_text
    assert client.responses.retrieve(second.id).output_text == second.output_text
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
