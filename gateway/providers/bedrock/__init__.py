"""Amazon Bedrock through boto3's `bedrock-runtime`: Converse, ConverseStream, InvokeModel.

boto3 blocks, so every call and every read of the event stream runs in a bounded thread pool
owned by this provider instance; the event loop never waits on a socket. Credentials come from
the standard chain (env, profile, SSO, role) and requests are SigV4-signed by botocore.

System and developer messages become `system` blocks; tool calls and results become `toolUse` /
`toolResult` blocks (consecutive results in one user turn, as roles must alternate); images go
as bytes (http URLs are fetched). `json_schema` output is native (`outputConfig.textFormat`);
`json_object` is emulated with an instruction in `system` and the answer checked, as for
Anthropic (a streamed emulated answer is sent whole once checked). Signed reasoning
(`reasoningContent`) travels as `thinking_blocks`, as for Anthropic.
Embeddings: Titan (one text per InvokeModel call, in parallel) and Cohere (one call).

Modules: `provider` (the adapter's hooks), `request` (our request -> Converse), `response`
(Converse and its stream -> ours), `threads` (boto3 off the loop), `errors`, `embeddings`.
"""

from __future__ import annotations

from gateway.providers.bedrock.provider import EMBEDDING_CALLS_IN_FLIGHT, BedrockProvider

__all__ = ["EMBEDDING_CALLS_IN_FLIGHT", "BedrockProvider"]
