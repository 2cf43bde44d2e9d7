"""How registry entries are checked: against each other (names, aliases, providers,
fallbacks, a provider's users), merged with a change, and validated into config types with
one message naming every bad field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import ConflictError, InvalidRequestError

_Config = TypeVar("_Config", ModelConfig, ProviderConfig)


def check_model(
    model: ModelConfig, providers: Mapping[str, ProviderConfig], owners: Mapping[str, str]
) -> None:
    """Refuse a model whose provider, names or fallbacks do not fit the rest."""
    where = f"model '{model.name}'"
    if model.provider not in providers:
        raise InvalidRequestError(
            f"{where}: unknown provider '{model.provider}'; registered providers are"
            f" {sorted(providers)}",
            param="provider",
        )
    owner = owners.get(model.name)
    if owner is not None and owner != model.name:
        raise InvalidRequestError(
            f"{where}: the name is already an alias of model '{owner}'", param="name"
        )
    seen: set[str] = set()
    for alias in model.aliases:
        owner = owners.get(alias)
        if alias == model.name or alias in seen:
            raise InvalidRequestError(f"{where}: alias '{alias}' is repeated", param="aliases")
        if owner is not None and owner != model.name:
            raise InvalidRequestError(
                f"{where}: alias '{alias}' is already the name or an alias of model '{owner}'",
                param="aliases",
            )
        seen.add(alias)
    own_names = {model.name, *model.aliases}
    for fallback in model.fallbacks:
        if fallback in own_names:
            raise InvalidRequestError(
                f"{where}: cannot fall back to itself ('{fallback}')", param="fallbacks"
            )
        if fallback not in owners:
            raise InvalidRequestError(
                f"{where}: fallback '{fallback}' is not a registered model", param="fallbacks"
            )


def check_unreferenced(
    name: str, names: set[str], models: Mapping[str, ModelConfig], action: str
) -> None:
    """Refuse to remove a model that other models fall back to."""
    if not names:
        return
    users = [m.name for m in models.values() if m.name != name and names & set(m.fallbacks)]
    if users:
        raise ConflictError(
            f"model '{name}' is a fallback of {some(users)}; remove it from their"
            f" fallbacks before you {action}",
            param="model",
        )


def check_provider_unused(name: str, models: Mapping[str, ModelConfig]) -> None:
    """Refuse to remove a provider that models still use."""
    users = [m.name for m in models.values() if m.provider == name]
    if users:
        raise ConflictError(
            f"provider '{name}' is used by {len(users)} model(s) ({some(users)});"
            " remove those models or move them to another provider first",
            param="name",
        )


def updated_provider(
    name: str, current: ProviderConfig, changes: Mapping[str, Any]
) -> ProviderConfig:
    """Provider `name` with `changes` merged in (nested mappings merged) and validated; its
    name cannot change."""
    if "name" in changes and changes["name"] != name:
        raise InvalidRequestError("a provider's name cannot be changed", param="name")
    return validated(ProviderConfig, merge(current.model_dump(), changes), "provider")


def updated_model(name: str, current: ModelConfig, changes: Mapping[str, Any]) -> ModelConfig:
    """Model `name` with `changes` merged in (nested mappings merged) and validated as a
    whole; its name cannot change, and the facts an admin changed are the admin's."""
    if "name" in changes and changes["name"] != name:
        raise InvalidRequestError(
            "a model's name cannot be changed; register the new name and remove this one",
            param="name",
        )
    updated = validated(ModelConfig, merge(current.model_dump(), changes), f"model '{name}'")
    if current.facts:  # the values an admin set now come from the admin
        changed = {k: "admin" for k in changes if k in current.facts}
        updated = updated.model_copy(update={"facts": {**current.facts, **changed}})
    return updated


def owners_of(models: Mapping[str, ModelConfig]) -> dict[str, str]:
    """Every name and alias -> the model's name."""
    owners: dict[str, str] = {}
    for model in models.values():
        owners[model.name] = model.name
        for alias in model.aliases:
            owners.setdefault(alias, model.name)
    return owners


def merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            value = merge(merged[key], value)
        merged[key] = value
    return merged


def validated(kind: type[_Config], value: _Config | Mapping[str, Any], what: str) -> _Config:
    if isinstance(value, kind):
        return value
    try:
        return kind.model_validate(value)
    except ValidationError as exc:
        raise invalid(what, exc) from None


def invalid(what: str, exc: ValidationError) -> InvalidRequestError:
    """One message naming every bad field, with the first field as `param`."""
    problems = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or what
        if error["type"] == "extra_forbidden":
            problems.append(f"{path}: unknown field")
            continue
        got = error.get("input")
        shown = f", got {got!r}" if not isinstance(got, (dict, list)) else ""
        problems.append(f"{path}: {error['msg']}{shown}")
    first = exc.errors()[0]["loc"] if exc.errors() else ()
    param = ".".join(str(part) for part in first) or None
    return InvalidRequestError(f"invalid {what}: {'; '.join(problems)}", param=param)


def some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
