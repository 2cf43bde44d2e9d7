"""The one app builder: `serve_config.yaml` and `llmgw up` both call `build_app`."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict
from ray.serve import Application

from deployments.ingress import Ingress
from deployments.pool import POOL_NAMES, ProviderPool
from gateway.auth import admin_key
from gateway.config import load_config, store_url

logger = logging.getLogger("llmgw.app")

APP_NAME = "llmgw"


class AppArgs(BaseModel):
    """The builder's arguments (`args:` in serve_config.yaml)."""

    model_config = ConfigDict(extra="forbid")

    config: str | None = None


def build_app(args: dict[str, Any] | None = None) -> Application:
    """The bound gateway: an ingress over one pool per provider type the config uses."""
    parsed = AppArgs.model_validate(args or {})
    config = load_config(parsed.config)
    key = admin_key(config.auth.admin_key_env)
    if key.generated:
        logger.warning("generated an admin key, saved in %s (mode 0600)", key.path)
    pools = {
        kind: ProviderPool.options(name=POOL_NAMES[kind]).bind(kind)
        for kind in sorted({p.type for p in config.providers})
    }
    return Ingress.bind(config, pools, key.hash, store_url(config))
