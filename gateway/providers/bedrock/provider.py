"""The Bedrock adapter: Converse and ConverseStream for chat, InvokeModel for embeddings, the
control plane's model list for health, all through boto3 in this provider's thread pool."""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from gateway.config import ConfigError, ModelConfig, ProviderConfig
from gateway.errors import GatewayError, InvalidRequestError
from gateway.providers.base import Provider
from gateway.providers.bedrock.embeddings import Answer, EmbeddingFamily, family_for, invoke
from gateway.providers.bedrock.errors import bedrock_error
from gateway.providers.bedrock.request import converse_params, has_tool_blocks
from gateway.providers.bedrock.response import ConverseStreamState, completion
from gateway.providers.bedrock.threads import EventReader, open_stream
from gateway.providers.blocking import BlockingPool, gather_bounded
from gateway.providers.embeddings import encode_embedding
from gateway.providers.images import ImageFetcher, check_image_count
from gateway.providers.streams import ChunkStream
from gateway.providers.support import SUPPORT, refuse
from gateway.providers.upstream_errors import malformed_error
from gateway.wire import (
    MAX_EMBEDDING_INPUTS,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)

MAX_THREADS = 64
# Calls waiting for a thread, per thread, before new calls are refused with a 503.
BACKLOG_PER_THREAD = 2
# Titan embeds one text per call: how many of a request's calls run at once (the texts are
# capped at the wire's MAX_EMBEDDING_INPUTS, checked again here for any other caller).
EMBEDDING_CALLS_IN_FLIGHT = 16
# The health probe's own limits (it has no model, so no model's timeouts).
PROBE_TIMEOUTS = (5.0, 10.0)


class BedrockProvider(Provider):
    """Foundation models on Amazon Bedrock, through the Converse API."""

    type = "bedrock"
    supports = SUPPORT["bedrock"].capabilities
    refuses = SUPPORT["bedrock"].refuses

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._session = boto3.session.Session(region_name=config.region)
        if not self._session.region_name:
            raise ConfigError(
                f"provider '{config.name}' region: expected an AWS region in the config or "
                "AWS_REGION / AWS_DEFAULT_REGION in the environment"
            )
        self.threads = min(config.max_connections, MAX_THREADS)
        self._pool = BlockingPool(
            self.threads,
            backlog=self.threads * BACKLOG_PER_THREAD,
            name=f"bedrock-{config.name}",
            provider=config.name,
        )
        # One botocore client per (service, connect, read timeouts); usually exactly one.
        self._clients: dict[tuple[str, float, float], Any] = {}
        self._clients_lock = threading.Lock()
        self.images = ImageFetcher()

    async def aclose(self) -> None:
        await self.images.aclose()
        self._pool.shutdown()

    def check(self, request: ChatCompletionRequest, model: ModelConfig) -> None:
        super().check(request, model)
        check_image_count(request)
        if request.tool_choice == "none" and has_tool_blocks(request):
            raise refuse(
                "tool_choice",
                self.type,
                "'none' cannot be honoured in a conversation that already used tools",
            )

    def _client(self, model: ModelConfig | None, service: str = "bedrock-runtime") -> Any:
        """The botocore client for a model's timeouts; retries off (the gateway retries)."""
        connect, read = (
            (model.timeouts.connect_s, model.timeouts.total_s) if model else PROBE_TIMEOUTS
        )
        key = (service, connect, read)
        with self._clients_lock:
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    service,
                    endpoint_url=self.config.endpoint_url,
                    config=Config(
                        retries={"total_max_attempts": 1, "mode": "standard"},
                        connect_timeout=connect,
                        read_timeout=read,
                        max_pool_connections=self.threads,
                        tcp_keepalive=True,
                        user_agent_extra="llmgw",
                    ),
                )
            return self._clients[key]

    # ----------------------------------------------------------------- request -> SDK call

    async def _convert_completion_params(
        self, request: ChatCompletionRequest, model: ModelConfig, *, stream: bool
    ) -> dict[str, Any]:
        return await converse_params(request, model, self.images)

    # boto3 blocks: every call and every read of the event stream runs in this provider's
    # bounded pool. Past the call's budget a queued call never starts; a running one keeps its
    # thread until boto3 returns, and a stream it opens then is closed at once.

    async def _create_completion(self, params: dict[str, Any], model: ModelConfig) -> Any:
        return await self._pool.submit(functools.partial(self._client(model).converse, **params))

    async def _create_stream(self, params: dict[str, Any], model: ModelConfig) -> EventReader:
        call = functools.partial(self._client(model).converse_stream, **params)
        return await open_stream(self._pool, call)

    # ----------------------------------------------------------------- SDK answer -> ours

    def _convert_completion_response(
        self, response: dict[str, Any], request: ChatCompletionRequest, model: ModelConfig
    ) -> ChatCompletion:
        return completion(response, request, model.name, self.name)

    def _stream_state(self, request: ChatCompletionRequest) -> ConverseStreamState:
        return ConverseStreamState(request, self.name)

    def _convert_completion_chunk_response(
        self, event: dict[str, Any], chunks: ChunkStream, state: ConverseStreamState
    ) -> list[ChatCompletionChunk]:
        return state.chunks(event, chunks)

    # ----------------------------------------------------------------- embeddings

    async def _convert_embedding_params(
        self, request: EmbeddingRequest, model: ModelConfig
    ) -> tuple[EmbeddingFamily, list[dict[str, Any]]]:
        family = family_for(model.upstream_id)
        if family is None:
            raise InvalidRequestError(
                f"model '{model.name}' ({model.upstream_id}) is not a Titan or Cohere embedding "
                "model",
                param="model",
            )
        texts = request.texts()
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise InvalidRequestError(
                f"'input' has {len(texts)} items; provider type '{self.type}' embeds at most "
                f"{MAX_EMBEDDING_INPUTS} per request",
                param="input",
            )
        return family, family.bodies(texts, request.dimensions)

    async def _create_embedding(
        self, params: tuple[EmbeddingFamily, list[dict[str, Any]]], model: ModelConfig
    ) -> tuple[EmbeddingFamily, list[Answer]]:
        family, bodies = params
        call = functools.partial(invoke, self._client(model), model.upstream_id)
        calls = [functools.partial(self._pool.submit, call, body) for body in bodies]
        return family, await gather_bounded(calls, EMBEDDING_CALLS_IN_FLIGHT)

    def _convert_embedding_response(
        self,
        response: tuple[EmbeddingFamily, list[Answer]],
        request: EmbeddingRequest,
        model: ModelConfig,
    ) -> EmbeddingResponse:
        family, answers = response
        try:
            vectors, tokens = family.read(answers)
        except (KeyError, TypeError) as exc:
            raise malformed_error(self.name, f"an embedding response without {exc}") from None
        data = [
            Embedding(index=i, embedding=encode_embedding(v, request.encoding_format))
            for i, v in enumerate(vectors)
        ]
        usage = EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
        return EmbeddingResponse(data=data, model=model.name, usage=usage)

    # ----------------------------------------------------------------- health and errors

    async def _probe(self) -> bool:
        """The control plane's list of text models: signed like every call, so it proves the
        endpoint answers and the credentials are accepted, and it costs no tokens."""
        client = self._client(None, "bedrock")
        call = functools.partial(client.list_foundation_models, byOutputModality="TEXT")
        try:
            await self._pool.submit(call)
        except ClientError as exc:
            # Signed, answered and refused for this one action: the endpoint is up and the
            # credentials are good, they only lack bedrock:ListFoundationModels (a role scoped
            # to InvokeModel, a VPC endpoint for the runtime alone). Not a reason to stop
            # routing to the provider.
            if exc.response.get("Error", {}).get("Code") != "AccessDeniedException":
                raise
        return True

    def _convert_error(self, exc: Exception) -> GatewayError:
        return bedrock_error(self.name, exc)
