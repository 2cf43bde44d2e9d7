"""Amazon Bedrock Runtime: Converse (JSON), ConverseStream (AWS event-stream), InvokeModel;
and the control plane's ListFoundationModels, which the gateway's health probe asks for.

Checks requests as Bedrock does: a SigV4 `Authorization` header whose signature verifies with
the test credentials, conversations that start with a user turn and alternate roles, non-blank
text, `toolConfig` whenever tool blocks appear, tool results answering the previous turn's
tool uses. Errors carry `x-amzn-ErrorType`; in-stream failures are modelled exceptions.
InvokeModel serves Titan and Cohere embedding bodies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from typing import Any
from urllib.parse import urlencode

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.protocol_servers import eventstream
from tests.protocol_servers.base import (
    MALFORMED_JSON,
    Failure,
    ProtocolError,
    ProtocolServer,
    Received,
    Reply,
    ToolUse,
    endpoint,
    signature_of,
    stop_applied,
    streaming,
    vector_for,
)

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop_sequence": "stop_sequence",
    "content_filter": "content_filtered",
}

# kind -> (status, error type, message)
ERRORS: dict[str, tuple[int, str, str]] = {
    "bad_request": (400, "ValidationException", "Malformed input request, please reformat."),
    "auth": (
        403,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    ),
    "permission": (
        403,
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    "not_found": (
        404,
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the provided model identifier.",
    ),
    "rate_limit": (
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
    ),
    "overloaded": (
        503,
        "ServiceUnavailableException",
        "Bedrock is unable to process your request.",
    ),
    "unavailable": (
        503,
        "ServiceUnavailableException",
        "Bedrock is unable to process your request.",
    ),
    "server": (500, "InternalServerException", "The system encountered an unexpected error."),
    "context_length": (400, "ValidationException", "Input is too long for requested model."),
    "request_timeout": (
        408,
        "ModelTimeoutException",
        "Model has timed out in processing the request.",
    ),
}

# Models with reasoning on: a tool-use turn sent back must start with its signed reasoning.
THINKING_MODELS = {"anthropic.claude-thinking-test-v1:0"}

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), "
    r"Signature=(?P<sig>[0-9a-f]{64})"
)


class BedrockServer(ProtocolServer):
    """`/model/{modelId}/converse`, `/converse-stream`, `/invoke`, as Bedrock Runtime has them."""

    name = "bedrock"

    def __init__(
        self,
        access_key: str = "AKIDLLMGWTEST",
        secret_key: str = "llmgw-test-secret",
        region: str = "us-east-1",
    ) -> None:
        super().__init__()
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        # A role allowed to invoke models but not to list them (the control plane's 403).
        self.deny_listing = False

    def routes(self) -> list[Route]:
        return [
            Route("/model/{model_id:path}/converse", self.converse, methods=["POST"]),
            Route("/model/{model_id:path}/converse-stream", self.converse_stream, methods=["POST"]),
            Route("/model/{model_id:path}/invoke", self.invoke, methods=["POST"]),
            Route("/foundation-models", self.foundation_models, methods=["GET"]),
        ]

    # ----------------------------------------------------------------- checks

    def verify_signature(self, received: Received) -> None:
        """Recompute the SigV4 signature over what arrived; a mismatch is Bedrock's 403."""
        match = _AUTHORIZATION.fullmatch(received.headers.get("authorization", ""))
        if match is None or "x-amz-date" not in received.headers:
            raise ProtocolError(403, "Missing Authentication Token", "auth")
        if match["key"] != self.access_key or match["service"] != "bedrock":
            raise ProtocolError(403, ERRORS["auth"][2], "auth")
        signed = match["signed"].split(";")
        url = f"http://{received.headers['host']}{received.path}"
        if received.query:
            url += "?" + urlencode(received.query)
        request = AWSRequest(
            method=received.method,
            url=url,
            headers={name: received.headers[name] for name in signed},
            data=received.body,
        )
        request.context["timestamp"] = received.headers["x-amz-date"]
        signer = SigV4Auth(
            Credentials(self.access_key, self.secret_key), "bedrock", match["region"]
        )
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if expected != match["sig"]:
            raise ProtocolError(
                403,
                "The request signature we calculated does not match the signature you provided.",
                "auth",
            )

    def body(self, received: Received) -> dict[str, Any]:
        self.verify_signature(received)
        try:
            return received.json() or {}
        except ValueError:
            raise ProtocolError(400, "Malformed input request, please reformat.") from None

    @staticmethod
    def check_conversation(body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        if not messages or messages[0].get("role") != "user":
            raise ProtocolError(
                400,
                "A conversation must start with a user message. Try again with a conversation "
                "that starts with a user message.",
            )
        pending: set[str] = set()
        uses_tools = False
        for i, message in enumerate(messages):
            if i and message.get("role") == messages[i - 1].get("role"):
                raise ProtocolError(
                    400,
                    "A conversation must alternate between user and assistant roles. Make sure "
                    "the conversation alternates between user and assistant roles and try again.",
                )
            blocks = message.get("content") or []
            if not blocks:
                raise ProtocolError(
                    400, f"The content field in the Message object at messages.{i} is empty."
                )
            answered = set()
            for j, block in enumerate(blocks):
                if "text" in block and not block["text"].strip():
                    raise ProtocolError(
                        400,
                        f"The text field in the ContentBlock object at messages.{i}.content.{j} "
                        "is blank. Add text to the text field, and try again.",
                    )
                if "image" in block:
                    base64.b64decode(block["image"]["source"]["bytes"], validate=True)
                if "toolResult" in block:
                    answered.add(block["toolResult"]["toolUseId"])
                uses_tools |= "toolUse" in block or "toolResult" in block
            if answered != pending:
                raise ProtocolError(
                    400,
                    f"The number of toolResult blocks at messages.{i}.content exceeds the number "
                    "of toolUse blocks of previous turn.",
                )
            pending = {b["toolUse"]["toolUseId"] for b in blocks if "toolUse" in b}
        tool_turns = [
            (i, m)
            for i, m in enumerate(messages)
            if m.get("role") == "assistant" and any("toolUse" in b for b in m["content"])
        ]
        if body.get("modelId") in THINKING_MODELS and tool_turns:
            i, turn = tool_turns[-1]
            reasoning = turn["content"][0].get("reasoningContent", {}).get("reasoningText")
            if reasoning is None or reasoning.get("signature") != signature_of(reasoning["text"]):
                raise ProtocolError(
                    400,
                    f"messages.{i}.content.0: when reasoning is enabled, an assistant message "
                    "with toolUse must start with its unmodified reasoningContent block.",
                )
        if uses_tools and not body.get("toolConfig"):
            raise ProtocolError(
                400,
                "The toolConfig field must be defined when using toolUse and toolResult content "
                "blocks.",
            )

    # ----------------------------------------------------------------- errors

    def error_response(self, failure: Failure, status: int | None = None) -> Response:
        default_status, error_type, message = ERRORS.get(
            failure.kind, (400, "ValidationException", failure.message)
        )
        if status is not None:
            message = failure.message
            if failure.kind not in ERRORS:
                error_type = "AccessDeniedException" if status == 403 else "ValidationException"
        headers = {
            "x-amzn-errortype": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-requestid": str(uuid.uuid4()),
        }
        if failure.retry_after is not None:
            headers["retry-after"] = str(int(failure.retry_after))
        return JSONResponse(
            {"message": message}, status_code=status or default_status, headers=headers
        )

    # ----------------------------------------------------------------- converse

    async def prepare(self, request: Request, received: Received) -> tuple[dict[str, Any], Reply]:
        body = self.body(received)
        body["modelId"] = request.path_params["model_id"]
        self.check_conversation(body)
        reply = self.next_reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return body, reply

    def outcome(self, body: dict[str, Any], reply: Reply) -> tuple[str, list[ToolUse], str]:
        stops = (body.get("inferenceConfig") or {}).get("stopSequences") or []
        text, hit = stop_applied(reply, stops)
        calls = list(reply.tool_calls)
        forced = ((body.get("toolConfig") or {}).get("toolChoice") or {}).get("tool")
        if forced and not calls:
            calls, text = (
                [ToolUse(forced["name"], json.loads(reply.text or "{}"), id=_tool_id())],
                "",
            )
        finish = reply.finish or ("stop_sequence" if hit else ("tool_calls" if calls else "stop"))
        return text, calls, reply.native_finish or STOP_REASONS[finish]

    def usage(self, reply: Reply) -> dict[str, int]:
        cached = reply.cached_tokens or 0
        usage = {
            # Bedrock counts cache reads apart from `inputTokens`.
            "inputTokens": reply.prompt_tokens - cached,
            "outputTokens": reply.completion_tokens,
            "totalTokens": reply.prompt_tokens + reply.completion_tokens,
        }
        if reply.cached_tokens is not None:
            usage.update(cacheReadInputTokens=cached, cacheWriteInputTokens=0)
        return usage

    @endpoint
    async def converse(self, request: Request, received: Received) -> Response:
        body, reply = await self.prepare(request, received)
        if reply.failure is not None:
            return self.error_response(reply.failure)
        if reply.malformed:
            return Response(MALFORMED_JSON, media_type="application/json")
        text, calls, stop_reason = self.outcome(body, reply)
        content: list[dict[str, Any]] = []
        if reply.thinking is not None:
            reasoning = {"text": reply.thinking, "signature": signature_of(reply.thinking)}
            content.append({"reasoningContent": {"reasoningText": reasoning}})
        content += [{"text": text}] if text else []
        content += [
            {"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.arguments}} for c in calls
        ]
        return JSONResponse(
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop_reason,
                "usage": self.usage(reply),
                "metrics": {"latencyMs": 321},
            },
            headers={"x-amzn-requestid": str(uuid.uuid4())},
        )

    @endpoint
    async def converse_stream(self, request: Request, received: Received) -> Response:
        body, reply = await self.prepare(request, received)
        if reply.failure is not None and not reply.failure_in_stream:
            return self.error_response(reply.failure)
        text, calls, stop_reason = self.outcome(body, reply)
        events = [eventstream.event("messageStart", {"role": "assistant"})]
        if reply.malformed:
            events.append(b"\x00\x00\x00\x20garbage-that-is-not-a-valid-prelude")
        index = 0
        if reply.thinking is not None:
            for piece in reply.pieces(reply.thinking):
                delta = {"reasoningContent": {"text": piece}}
                events.append(
                    eventstream.event(
                        "contentBlockDelta", {"contentBlockIndex": index, "delta": delta}
                    )
                )
            signed = {"reasoningContent": {"signature": signature_of(reply.thinking)}}
            events.append(
                eventstream.event(
                    "contentBlockDelta", {"contentBlockIndex": index, "delta": signed}
                )
            )
            events.append(eventstream.event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        if text:
            for piece in reply.pieces(text):
                events.append(
                    eventstream.event(
                        "contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}}
                    )
                )
            events.append(eventstream.event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        if reply.failure is not None:
            _, error_type, message = ERRORS[reply.failure.kind]
            events.append(eventstream.exception(error_type[0].lower() + error_type[1:], message))
            return streaming(events, reply, "application/vnd.amazon.eventstream")
        for call in calls:
            start = {"toolUse": {"toolUseId": call.id, "name": call.name}}
            events.append(
                eventstream.event("contentBlockStart", {"contentBlockIndex": index, "start": start})
            )
            for piece in reply.pieces(json.dumps(call.arguments)):
                delta = {"toolUse": {"input": piece}}
                events.append(
                    eventstream.event(
                        "contentBlockDelta", {"contentBlockIndex": index, "delta": delta}
                    )
                )
            events.append(eventstream.event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        events.append(eventstream.event("messageStop", {"stopReason": stop_reason}))
        events.append(
            eventstream.event(
                "metadata", {"usage": self.usage(reply), "metrics": {"latencyMs": 321}}
            )
        )
        return streaming(events, reply, "application/vnd.amazon.eventstream")

    # ----------------------------------------------------------------- control plane

    @endpoint
    async def foundation_models(self, request: Request, received: Received) -> Response:
        """ListFoundationModels (the `bedrock` service, signed as `bedrock` too)."""
        self.verify_signature(received)
        if self.deny_listing:
            raise ProtocolError(403, ERRORS["permission"][2], "permission")
        modality = received.query.get("byOutputModality")
        if modality not in (None, "TEXT", "IMAGE", "EMBEDDING"):
            raise ProtocolError(400, f"byOutputModality: unknown value {modality}")
        models = [
            ("anthropic.claude-test-v1:0", "TEXT"),
            ("anthropic.claude-thinking-test-v1:0", "TEXT"),
            ("amazon.titan-embed-text-v2:0", "EMBEDDING"),
            ("cohere.embed-v4:0", "EMBEDDING"),
        ]
        summaries = [
            {
                "modelArn": f"arn:aws:bedrock:{self.region}::foundation-model/{model_id}",
                "modelId": model_id,
                "modelName": model_id,
                "providerName": model_id.split(".", 1)[0],
                "inputModalities": ["TEXT"],
                "outputModalities": [output],
                "responseStreamingSupported": output == "TEXT",
                "inferenceTypesSupported": ["ON_DEMAND"],
                "modelLifecycle": {"status": "ACTIVE"},
            }
            for model_id, output in models
            if modality in (None, output)
        ]
        return JSONResponse({"modelSummaries": summaries})

    # ----------------------------------------------------------------- invoke (embeddings)

    @endpoint
    async def invoke(self, request: Request, received: Received) -> Response:
        body = self.body(received)
        model_id = request.path_params["model_id"]
        reply = self.next_reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.failure is not None:
            return self.error_response(reply.failure)
        if reply.malformed:
            return Response(MALFORMED_JSON, media_type="application/json")
        if model_id.startswith("amazon.titan-embed-text"):
            text = body.get("inputText")
            if not isinstance(text, str) or set(body) - {
                "inputText",
                "dimensions",
                "normalize",
                "embeddingTypes",
            }:
                raise ProtocolError(
                    400, "Malformed input request: extraneous key or missing inputText"
                )
            dims = body.get("dimensions", 1024)
            if dims not in (256, 512, 1024):
                raise ProtocolError(
                    400, "Malformed input request: dimensions must be 256, 512 or 1024"
                )
            vector = vector_for(text, dims)
            return JSONResponse(
                {
                    "embedding": vector,
                    "embeddingsByType": {"float": vector},
                    "inputTextTokenCount": len(text.split()),
                }
            )
        if model_id.startswith("cohere.embed"):
            texts = body.get("texts")
            if not isinstance(texts, list) or "input_type" not in body:
                raise ProtocolError(
                    400, "Malformed input request: texts and input_type are required"
                )
            dims = body.get("output_dimension", 1024)
            vectors = [vector_for(t, dims) for t in texts]
            tokens = sum(len(t.split()) for t in texts)
            return JSONResponse(
                {
                    "id": str(uuid.uuid4()),
                    "texts": texts,
                    "embeddings": {"float": vectors},
                    "response_type": "embeddings_by_type",
                },
                headers={"x-amzn-bedrock-input-token-count": str(tokens)},
            )
        raise ProtocolError(400, f"The provided model identifier is invalid: {model_id}")


def _tool_id() -> str:
    return f"tooluse_{uuid.uuid4().hex[:22]}"
