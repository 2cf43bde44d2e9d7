"""OpenAI's wire format as pydantic models: what clients send us and what we send back.

Requests are validated strictly (an unknown parameter is a 400, as OpenAI answers); responses
serialise to exactly the JSON OpenAI returns, checked against its published OpenAPI document.

Every model is importable from here (`from gateway.wire import ChatCompletion`); each is
defined in one of:

- `gateway.wire.base`: the strict and open base models, omitted fields, bounded JSON.
- `gateway.wire.messages`: content parts, messages and tool calls.
- `gateway.wire.chat_request`: `ChatCompletionRequest`, its tools, options and limits, and
  llmgw's `RouteHints`.
- `gateway.wire.responses`: `ChatCompletion`, its stream chunks, `Usage`, the model list,
  `ErrorResponse` and `dump`.
- `gateway.wire.embeddings`: `EmbeddingRequest` and `EmbeddingResponse`.
"""

from gateway.wire.base import MAX_JSON_DEPTH, JsonObject, json_depth
from gateway.wire.chat_request import (
    MAX_LOGIT_BIAS,
    MAX_METADATA,
    MAX_METADATA_KEY,
    MAX_METADATA_VALUE,
    MAX_STOP,
    MAX_TOKENS,
    MAX_TOOLS,
    Bias,
    ChatCompletionRequest,
    FunctionDef,
    JsonSchemaFormat,
    NamedFunction,
    NamedToolChoice,
    ResponseFormat,
    RouteHints,
    StreamOptions,
    Tool,
    ToolChoice,
)
from gateway.wire.embeddings import (
    MAX_EMBEDDING_INPUTS,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)
from gateway.wire.messages import (
    AssistantMessage,
    ContentPart,
    FunctionCall,
    ImagePart,
    ImageURL,
    Message,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
    text_of,
)
from gateway.wire.responses import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    ErrorDetail,
    ErrorResponse,
    FinishReason,
    FunctionCallDelta,
    ModelCard,
    ModelList,
    PromptTokensDetails,
    ResponseMessage,
    ToolCallDelta,
    Usage,
    completion_id,
    dump,
)

__all__ = [
    "MAX_EMBEDDING_INPUTS",
    "MAX_JSON_DEPTH",
    "MAX_LOGIT_BIAS",
    "MAX_METADATA",
    "MAX_METADATA_KEY",
    "MAX_METADATA_VALUE",
    "MAX_STOP",
    "MAX_TOKENS",
    "MAX_TOOLS",
    "AssistantMessage",
    "Bias",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "Choice",
    "ChunkChoice",
    "ContentPart",
    "Delta",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "ErrorDetail",
    "ErrorResponse",
    "FinishReason",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionDef",
    "ImagePart",
    "ImageURL",
    "JsonObject",
    "JsonSchemaFormat",
    "Message",
    "ModelCard",
    "ModelList",
    "NamedFunction",
    "NamedToolChoice",
    "PromptTokensDetails",
    "ResponseFormat",
    "ResponseMessage",
    "RouteHints",
    "StreamOptions",
    "SystemMessage",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolMessage",
    "Usage",
    "UserMessage",
    "completion_id",
    "dump",
    "json_depth",
    "text_of",
]
