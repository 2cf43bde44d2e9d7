"""Moved to `deployments.placement_router` (this name collided with `gateway.routing.router`).

Kept only until `deployments/app.py` imports from the new module; then delete this file.
"""

from deployments.placement_router import Router, RouterInvoker

__all__ = ["Router", "RouterInvoker"]
