"""Reconciling the registry with its config file: the file is the truth for what it declares.

On every start the config's providers and models are added or updated; entries an earlier file
declared and this one does not are removed (or deprecated, with `registry.on_removed:
deprecate`); entries added through the admin API stay. An admin's change to a config entry
stands until the file changes that entry. The same plan, dry, is `llmgw models diff`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import orjson

from gateway.config import GatewayConfig, ModelConfig, ProviderConfig
from gateway.registry.origin import Key, Origin, entry_digest

log = logging.getLogger("gateway.registry.registry")


def config_digest(config: GatewayConfig) -> str:
    """A hash of the providers and models a config file names (other sections do not count)."""
    data = {
        "providers": [p.model_dump(mode="json") for p in config.providers],
        "models": [m.model_dump(mode="json") for m in config.models],
        "on_removed": config.registry.on_removed,
    }
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class Reconciliation:
    """The registry after reconciling with a config file, and what changed, by name."""

    providers: dict[str, ProviderConfig]
    models: dict[str, ModelConfig]
    origins: dict[Key, Origin]
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    deprecated: list[str] = field(default_factory=list)
    kept_overrides: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed or self.deprecated)

    def summary(self) -> dict[str, list[str]]:
        return {
            "add": self.added,
            "change": self.changed,
            "remove": self.removed,
            "deprecate": self.deprecated,
            "admin_overrides_kept": self.kept_overrides,
        }


def reconcile(
    providers: Mapping[str, ProviderConfig],
    models: Mapping[str, ModelConfig],
    origins: Mapping[Key, Origin],
    config: GatewayConfig,
    path: str | None,
) -> Reconciliation:
    """The registry with `config` reconciled into it (pure: nothing is saved)."""
    digest = config_digest(config)
    deprecate = config.registry.on_removed == "deprecate"
    out = Reconciliation(dict(providers), dict(models), dict(origins))
    declared_models = {m.name for m in config.models}
    declared_providers = {p.name for p in config.providers}

    # What an earlier file declared and this one does not.
    for name, model in models.items():
        origin = origins.get(("model", name))
        if origin is None or origin.kind != "config" or name in declared_models:
            continue
        if deprecate:
            if model.status != "deprecated" or not origin.removed_from_config:
                out.models[name] = model.model_copy(update={"status": "deprecated"})
                out.origins[("model", name)] = replace(origin, removed_from_config=True)
                out.deprecated.append(name)
        else:
            del out.models[name]
            out.origins.pop(("model", name), None)
            out.removed.append(name)
    used = {m.provider for m in out.models.values()} | {m.provider for m in config.models}
    for name in providers:
        origin = origins.get(("provider", name))
        if origin is None or origin.kind != "config" or name in declared_providers:
            continue
        if name in used:
            log.warning("registry: provider '%s' left the config but models still use it", name)
            continue
        del out.providers[name]
        out.origins.pop(("provider", name), None)
        out.removed.append(f"provider:{name}")

    # What this file declares: added, updated, or an admin override kept.
    def take(kind: str, entry: ProviderConfig | ModelConfig, stored: object) -> bool:
        key: Key = (kind, entry.name)  # type: ignore[assignment]
        entry_hash = entry_digest(entry)
        origin = origins.get(key)
        if (
            stored is not None
            and origin is not None
            and origin.kind == "config"
            and origin.override_by is not None
            and origin.entry_hash == entry_hash
        ):
            out.origins[key] = replace(origin, path=path, config_hash=digest)
            out.kept_overrides.append(entry.name)
            return False
        out.origins[key] = Origin.config(path, digest, entry_hash)
        label = entry.name if kind == "model" else f"provider:{entry.name}"
        if stored is None:
            out.added.append(label)
        elif stored != entry:
            out.changed.append(label)
        return True

    for provider in config.providers:
        if take("provider", provider, providers.get(provider.name)):
            out.providers[provider.name] = provider
    config_models = [m for m in config.models if take("model", m, models.get(m.name))]
    out.models = _merge_models(out.models, config_models)
    return out


def _merge_models(
    models: dict[str, ModelConfig], config_models: list[ModelConfig]
) -> dict[str, ModelConfig]:
    """`models` with the config's upserted. Names that clash yield to the config: a kept
    model loses an alias the config gives to one of its models, and fallbacks left pointing
    nowhere are dropped. A config alias that is the name of a kept model is the exception (a
    name is never taken away)."""
    ours = {name: m.name for m in config_models for name in (m.name, *m.aliases)}
    merged = {name: m for name, m in models.items() if name not in ours or ours[name] != name}
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
    return merged
