"""Seeding the registry from the config file, and reconciling a store with a changed file.

The config wins for what it names; models and providers added through the API or CLI stay.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

import orjson

from gateway.config import GatewayConfig, ModelConfig, ProviderConfig

log = logging.getLogger("gateway.registry.registry")


def config_digest(config: GatewayConfig) -> str:
    """A hash of the providers and models a config file names (other sections do not count)."""
    data = {
        "providers": [p.model_dump(mode="json") for p in config.providers],
        "models": [m.model_dump(mode="json") for m in config.models],
    }
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def merge_config(
    providers: Mapping[str, ProviderConfig],
    models: Mapping[str, ModelConfig],
    config: GatewayConfig,
) -> tuple[dict[str, ProviderConfig], dict[str, ModelConfig]]:
    """The stored registry with the config's providers and models upserted.

    Stored names that clash with the config's yield: a stored model loses an alias the config
    gives to one of its models, and fallbacks left pointing nowhere are dropped. A config alias
    that is the name of a stored model is the one exception (a name is never taken away).
    """
    ours = {name: m.name for m in config.models for name in (m.name, *m.aliases)}
    merged = {name: m for name, m in models.items() if name not in ours or ours[name] != name}
    config_models = list(config.models)
    for name, model in list(merged.items()):
        if name in ours:
            owner = ours.pop(name)
            log.warning(
                "registry: config alias '%s' of model '%s' is the name of a model added"
                " through the API; the alias is not applied",
                name,
                owner,
            )
            config_models = [
                m.model_copy(update={"aliases": [a for a in m.aliases if a != name]})
                if m.name == owner
                else m
                for m in config_models
            ]
        clashes = [a for a in model.aliases if a in ours]
        if clashes:
            log.warning(
                "registry: model '%s' loses alias(es) %s, now named by the config file",
                name,
                clashes,
            )
            merged[name] = model.model_copy(
                update={"aliases": [a for a in model.aliases if a not in ours]}
            )
    merged.update({m.name: m for m in config_models})
    names = {n for m in merged.values() for n in (m.name, *m.aliases)}
    for name, model in list(merged.items()):
        dangling = [f for f in model.fallbacks if f not in names]
        if dangling:
            log.warning("registry: model '%s' loses unknown fallback(s) %s", name, dangling)
            merged[name] = model.model_copy(
                update={"fallbacks": [f for f in model.fallbacks if f in names]}
            )
    return {**providers, **{p.name: p for p in config.providers}}, merged
