"""A pool's side channel: an ingress's calls straight to a pool replica over a kept-alive TCP
connection of the pool's own, beside Serve's handle (`server.side_channel`, on by default).

bench/hop_cost.py measured Serve's gRPC hop at ~0.4-0.5 ms of CPU on each side of a unary
call and ~1-2 ms a side for a 20-chunk stream; a bare socket costs ~0.01-0.03 ms and ~0.1 ms.

- A pool replica with the side channel listens on its node's address (any free port) and
  announces itself to the `PoolDirectory` actor every `HEARTBEAT_S` (provider type, address);
  on a graceful stop it drains (listed for no new call; its callers keep the connections of
  the calls in flight, which it waits for) and then withdraws, and the directory forgets one
  it has not heard from in `EXPIRE_S` (a replica that died: its callers close every
  connection to it, so calls waiting there fail at once).
- Every connection opens with the cluster's token (random, made by the directory): a
  connection that does not send it first is closed before anything else it sends is read.
- Each ingress (or Router) replica reads the endpoints every `REFRESH_S` and sends a call to
  the endpoint of its pool type with the fewest calls in flight, on an idle connection or a
  new one. With no endpoint, or one that refuses the connection, the call goes by Serve's
  handle as before. A connection lost once the call was sent is a 503 (`pool_connection_lost`):
  the invoker's one retry and the fallback chain take it, as they do a pool replica lost under
  a handle call. A caller that goes away closes the connection, and the pool cancels the call.
- Serve's autoscaler does not see these calls by itself: each pool replica reports its calls
  in flight (`ProviderPool.record_autoscaling_stats`), and a pool that autoscales does so by
  `autoscaling_policy`, Serve's default policy over both kinds of calls (`deployments.app`
  sets it; serve_config.yaml names it for `serve deploy`).

Its parts, one module each:

- `deployments.side_channel` (here): what every part agrees on: the timings, the frame format,
  the token handshake's answer, the directory's listing, and Serve's autoscaling policy (its
  path, `deployments.side_channel:autoscaling_policy`, is named in deployment files).
- `deployments.side_channel_pool`: the pool replica's listener and heartbeat.
- `deployments.side_channel_directory`: the directory actor.
- `deployments.side_channel_client`: the caller's endpoints, connections and calls.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

HEARTBEAT_S = 2.0
EXPIRE_S = 3 * HEARTBEAT_S
# The largest frame read: a request is bounded by `server.max_body_bytes` well below this.
MAX_FRAME = 256 * 1024 * 1024
TOKEN_BYTES = 32
# A pool replica's answer to a caller's token: the connection is open for calls.
TOKEN_OK = b"ok"
# The custom autoscaling metric a pool replica reports: its side channel's calls in flight.
IN_FLIGHT_METRIC = "side_channel_in_flight"
POLICY = "deployments.side_channel:autoscaling_policy"
# What the directory lists: its version, the token, live addresses by pool type, and the
# addresses of replicas draining (no new calls; the calls in flight finish).
Listing = tuple[int, bytes, dict[str, list], list]


# A connection that closed, reset, timed out or sent a frame too large: OSError covers
# ConnectionError and TimeoutError.
DROPPED = (asyncio.IncompleteReadError, OSError)


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes:
    size = int.from_bytes(await reader.readexactly(4), "big")
    if size > limit:
        raise ConnectionError(f"a {size}-byte frame, over the {limit} allowed")
    return await reader.readexactly(size)


# ---------------------------------------------------------------------------- autoscaling


def autoscaling_policy(ctx: Any) -> tuple[float, dict[str, Any]]:
    """Serve's default autoscaling policy, over a pool's calls by handle (Serve counts them)
    plus those by side channel (each replica's `IN_FLIGHT_METRIC`, which Serve averages)."""
    from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy

    by_channel = sum((ctx.aggregated_metrics or {}).get(IN_FLIGHT_METRIC, {}).values())
    if by_channel:
        total = ctx.total_num_requests + by_channel
        ctx = copy.copy(ctx)
        # A `cached_property` in Ray 2.60: the copy's own value shadows it (a unit test holds
        # this to Ray's AutoscalingContext).
        ctx.total_num_requests = total
    return replica_queue_length_autoscaling_policy(ctx)
