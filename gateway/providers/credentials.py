"""An adapter's API key: read from the environment variable its config names, never the config."""

from __future__ import annotations

import os

from gateway.config import ProviderConfig
from gateway.errors import UpstreamError


def api_key(config: ProviderConfig, default_env: str) -> str | None:
    """The provider's key from the environment variable its config names (or the default)."""
    return os.environ.get(config.api_key_env or default_env) or None


def missing_key(config: ProviderConfig, default_env: str) -> UpstreamError:
    """The error for a call to a provider whose key variable is unset, naming the variable."""
    env = config.api_key_env or default_env
    return UpstreamError(
        f"provider '{config.name}' has no API key: environment variable {env} is not set",
        provider=config.name,
        code="upstream_auth_failed",
    )
