"""`actors.resources` places the gateway's named actors: on a cluster they ask for a resource
only the nodes that stay advertise, so an autoscaler never takes the registry or the usage
spool away with a pool node."""

from __future__ import annotations

import time
from pathlib import Path

import ray

from deployments.access_actor import get_or_create_access
from deployments.quota_actor import get_or_create_quota_actor
from deployments.registry_actor import get_or_create_registry
from deployments.usage_writer import get_or_create_usage_writer

# A resource no node of the session's cluster has: the actors wait for a node that does.
PLACED = {"llmgw_test_keeper_node": 0.001}


def test_each_named_actor_asks_for_the_configured_resource(
    ray_cluster: None, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'llmgw.db'}"
    namespace = "llmgw-placement-test"
    made = {
        "registry": get_or_create_registry(
            None, store_url, name="placed-registry", namespace=namespace, resources=PLACED
        ),
        "access": get_or_create_access(
            store_url, name="placed-access", namespace=namespace, resources=PLACED
        ),
        "quota": get_or_create_quota_actor(
            store_url, name="placed-quota", namespace=namespace, resources=PLACED
        ),
        "writer": get_or_create_usage_writer(
            store_url, name="placed-writer", namespace=namespace, resources=PLACED
        ),
    }
    # The same writer without the setting starts at once on the session's node.
    unplaced = get_or_create_usage_writer(store_url, name="unplaced-writer", namespace=namespace)
    try:
        names = {f"placed-{kind}" for kind in made} | {"unplaced-writer"}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = {
                a["Name"]: a["State"]
                for a in ray._private.state.actors().values()
                if a["Name"] in names and a["State"] != "DEAD"
            }
            if states.get("unplaced-writer") == "ALIVE":
                break
            time.sleep(0.5)
        assert states.pop("unplaced-writer") == "ALIVE"
        # No node has the resource, so none of the placed ones started anywhere.
        assert states == {name: "PENDING_CREATION" for name in names - {"unplaced-writer"}}
    finally:
        for handle in [*made.values(), unplaced]:
            ray.kill(handle)
