"""Can this model serve this request: what a request needs, and what each provider type serves.

`needs_of` computes a chat request's needs once: the capabilities it asks of a model and the
parameters it uses that some provider type refuses. `SUPPORT` declares, per provider type, the
capabilities it can serve and the parameters it refuses. The adapters take their class
attributes from it and enforce them before any call; routing skips a model whose provider type
refuses what the request uses (so `auto` routes around it and a named model is refused before
any hop); config load refuses a model declaring a capability its type cannot serve.

The declarations are data here, not in the adapter modules, because routing and config load
must not import the SDKs: importing `anthropic` alone takes seconds on a loaded machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import InvalidRequestError
from gateway.wire import ChatCompletionRequest, ImagePart

# Parameters a provider type may refuse outright: used when set to anything but None or False
# (temperature=0 is used; logprobs=False is not).
_PLAIN_PARAMS = (
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "metadata",
    "store",
    "service_tier",
    "reasoning_effort",
    "prompt_cache_key",
    "safety_identifier",
    "user",
)
# Parameters used only with some values, and why a type refusing them does.
_WHY = {
    "n": "only one choice per request; send n=1",
    "parallel_tool_calls": "it cannot limit tool calls (parallel_tool_calls: false)",
    "tool_choice": "it cannot force a tool; use 'auto'",
    "modalities": "only text output",
}


@dataclass(frozen=True, slots=True)
class RequestNeeds:
    """What one request asks of a model: capabilities, and parameters some types refuse."""

    capabilities: frozenset[str]
    params: frozenset[str] = frozenset()


EMBEDDING_NEEDS = RequestNeeds(frozenset({"embeddings"}))


def needs_of(request: ChatCompletionRequest) -> RequestNeeds:
    """The capabilities and refusable parameters a chat request uses.

    `tools` are needed whenever the request sends any, whatever `tool_choice` says: every
    adapter passes them upstream, so a model without tools cannot take them.
    """
    needs = {"chat"}
    if request.stream:
        needs.add("streaming")
    if request.tools:
        needs.add("tools")
    if request.response_format is not None and request.response_format.type != "text":
        needs.add("json_mode")
    for message in request.messages:
        if isinstance(message.content, list) and any(
            isinstance(p, ImagePart) for p in message.content
        ):
            needs.add("vision")
            break
    params = set()
    for name in _PLAIN_PARAMS:
        value = getattr(request, name)
        if value is not None and value is not False:
            params.add(name)
    if (request.n or 1) > 1:
        params.add("n")
    if request.parallel_tool_calls is False:
        params.add("parallel_tool_calls")
    choice = request.tool_choice
    if choice == "required" or (choice is not None and not isinstance(choice, str)):
        params.add("tool_choice")
    if request.modalities and set(request.modalities) != {"text"}:
        params.add("modalities")
    return RequestNeeds(frozenset(needs), frozenset(params))


@dataclass(frozen=True, slots=True)
class ProviderSupport:
    """One provider type: the capabilities it can serve and the parameters it refuses."""

    capabilities: frozenset[str]
    refuses: frozenset[str] = frozenset()


_EVERY_CAPABILITY = frozenset({"chat", "streaming", "tools", "vision", "json_mode", "embeddings"})

SUPPORT: dict[str, ProviderSupport] = {
    "sim": ProviderSupport(_EVERY_CAPABILITY),
    "openai": ProviderSupport(_EVERY_CAPABILITY),
    "azure_openai": ProviderSupport(_EVERY_CAPABILITY),
    # Messages API 2026-10-21 refuses temperature and top_p on current models; it has no
    # sampling seed, penalties, logprobs or n, and no image or audio output.
    "anthropic": ProviderSupport(
        frozenset({"chat", "streaming", "tools", "vision", "json_mode"}),
        frozenset(
            {
                "temperature",
                "top_p",
                "seed",
                "presence_penalty",
                "frequency_penalty",
                "logit_bias",
                "logprobs",
                "top_logprobs",
                "metadata",
                "store",
                "service_tier",
                "prompt_cache_key",
                "safety_identifier",
                "n",
                "modalities",
            }
        ),
    ),
    # Converse has no seed, penalties, logprobs, reasoning effort or n, and cannot limit tool
    # calls to one.
    "bedrock": ProviderSupport(
        _EVERY_CAPABILITY,
        frozenset(
            {
                "seed",
                "presence_penalty",
                "frequency_penalty",
                "logit_bias",
                "logprobs",
                "top_logprobs",
                "store",
                "service_tier",
                "reasoning_effort",
                "prompt_cache_key",
                "safety_identifier",
                "n",
                "parallel_tool_calls",
                "modalities",
            }
        ),
    ),
    # Ollama's chat API cannot force a tool or limit tool calls, and has no logprobs, n or user.
    "ollama": ProviderSupport(
        _EVERY_CAPABILITY,
        frozenset(
            {
                "user",
                "logit_bias",
                "logprobs",
                "top_logprobs",
                "metadata",
                "store",
                "service_tier",
                "reasoning_effort",
                "prompt_cache_key",
                "safety_identifier",
                "n",
                "parallel_tool_calls",
                "tool_choice",
                "modalities",
            }
        ),
    ),
}
_NONE = ProviderSupport(frozenset())


def support(provider_type: str) -> ProviderSupport:
    """What a provider type serves and refuses (an unknown type: nothing)."""
    return SUPPORT.get(provider_type, _NONE)


def refusal(param: str, provider_type: str) -> InvalidRequestError:
    """The 400 for a parameter a provider type refuses, the same from routing or an adapter."""
    why = _WHY.get(param)
    suffix = f": {why}" if why else ""
    return InvalidRequestError(
        f"'{param}' is not supported by provider type '{provider_type}'{suffix}", param=param
    )


def refuse(param: str, provider_type: str, detail: str = "") -> InvalidRequestError:
    """The 400 for a parameter value a provider cannot honour, with what it can take."""
    suffix = f": {detail}" if detail else ""
    return InvalidRequestError(
        f"'{param}' is not supported by provider type '{provider_type}'{suffix}", param=param
    )
