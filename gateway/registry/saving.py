"""How one registry change is written to the store: in one transaction, before the registry
applies it, so memory never runs ahead of the store; a store that cannot take it is a 503.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from sqlalchemy.exc import SQLAlchemyError

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import ServiceUnavailableError
from gateway.registry.origin import Key, Origin
from gateway.store import StaleRegistryError, Store

# The registry's own logger: its saves are the registry's story.
log = logging.getLogger("gateway.registry.registry")


def save_change(
    store: Store,
    version: int,
    *,
    saved: Iterable[ModelConfig | ProviderConfig],
    deleted_models: Iterable[str],
    deleted_providers: Iterable[str],
    config_hash: str | None,
    config_path: str | None,
    origins: Mapping[Key, Origin],
) -> None:
    """Save the entries added or changed, the names deleted and every origin at `version`."""
    saved = list(saved)
    try:
        store.save_registry_change(
            version,
            providers=[c for c in saved if isinstance(c, ProviderConfig)],
            models=[c for c in saved if isinstance(c, ModelConfig)],
            delete_models=deleted_models,
            delete_providers=deleted_providers,
            config_hash=config_hash,
            config_path=config_path,
            origins={key: origin.to_json() for key, origin in origins.items()},
        )
    except (SQLAlchemyError, StaleRegistryError) as exc:
        log.exception("registry: saving version %d failed", version)
        raise ServiceUnavailableError(
            f"the registry could not save the change to its store: {exc}"
        ) from exc
