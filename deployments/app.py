"""The one app builder: `serve_config.yaml` and `llmgw up` both call `build_app`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from ray.serve import Application

from deployments.ingress import Ingress
from deployments.live_settings import SETTINGS, LiveSettings
from deployments.options import POOL_NAMES, serve_options
from deployments.placement_router import Router
from deployments.pool import ProviderPool
from deployments.replica_http import parse_listen
from deployments.side_channel import POLICY
from gateway.auth import admin_key
from gateway.config import ConfigError, DeploymentSettings, GatewayConfig, load_config, store_url
from gateway.providers.discovery import default_config, with_installed_models
from gateway.providers.facts import load_model_facts

logger = logging.getLogger("llmgw.app")

APP_NAME = "llmgw"
# How long a stopping replica (ingress or pool) waits for its in-flight requests, streams
# included, before Serve stops it anyway: the bound on a graceful `llmgw down` or SIGTERM.
DRAIN_TIMEOUT_S = 30.0
# A deployment the config does not use: no replica, and none started unless a call arrives.
UNUSED: dict[str, int] = {"min_replicas": 0, "initial_replicas": 0, "max_replicas": 1}


class AppArgs(BaseModel):
    """The builder's arguments (`args:` in serve_config.yaml)."""

    model_config = ConfigDict(extra="forbid")

    config: str | None = None
    # `host:port` the ingress replicas serve HTTP on themselves (SO_REUSEPORT), with Serve's
    # proxy disabled (`proxy_location: Disabled`); null: Serve's proxy serves HTTP.
    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value


def build_app(args: dict[str, Any] | None = None) -> Application:
    """The bound gateway: an ingress over one pool per provider type and a Router.

    Every deployment the app can have is bound, so one serve_config.yaml may set options for
    all of them; those the config does not use (a provider type it has no provider of, or
    runs inline; the Router unless `routing.placement: router`) start with zero replicas.
    """
    parsed = AppArgs.model_validate(args or {})
    if parsed.config is None:
        # The built-in sim models, plus each provider whose credentials are in the environment.
        config, report = default_config()
    else:
        config, report = with_installed_models(load_config(parsed.config), parsed.config)
        # The registry records which file its config entries came from.
        config = config.from_file(str(Path(parsed.config).resolve()))
    config = load_model_facts().apply(config)
    key = admin_key(config.auth.admin_key_env)
    if key.generated:
        logger.warning("generated an admin key, saved in %s (mode 0600)", key.path)
    used = used_deployments(config)

    def options(name: str) -> dict[str, Any]:
        settings = config.deployments.get(name)
        base = {
            "name": name,
            "graceful_shutdown_timeout_s": DRAIN_TIMEOUT_S,
            "user_config": live_settings(name, settings).model_dump(),
        }
        if name not in used:
            if settings is not None:
                logger.warning("deployments.%s is set but the config does not use it", name)
            return {**base, "autoscaling_config": UNUSED}
        return {**base, **serve_options(settings)}

    side_channel = side_channel_placement(config)

    def counted_options(name: str, uncounted: bool) -> dict[str, Any]:
        found = options(name)
        scaling = found.get("autoscaling_config")
        if uncounted and name in used and scaling is not None:
            # Serve counts the calls by handle; the policy adds those it cannot see (by side
            # channel to a pool, by its own HTTP server to an ingress replica).
            found["autoscaling_config"] = {**scaling, "policy": {"policy_function": POLICY}}
        return found

    pools = {
        kind: ProviderPool.options(**counted_options(name, bool(side_channel))).bind(
            kind, **side_channel
        )
        for kind, name in POOL_NAMES.items()
    }
    router = Router.options(**options("Router")).bind(config, pools)
    providers = [status._asdict() for status in report]
    listen = parse_listen(parsed.listen) if parsed.listen is not None else None
    ingress = Ingress.options(**counted_options("Ingress", listen is not None))
    return ingress.bind(
        config, pools, key.hash, store_url(config), router, providers, listen=listen
    )


def live_settings(name: str, settings: DeploymentSettings | None) -> LiveSettings:
    """A deployment's starting `user_config`: its defaults, with what the config's
    `deployments.<name>.user_config` sets, checked as a redeploy would check it."""
    given = settings.user_config if settings is not None else None
    try:
        return SETTINGS[name].model_validate(given or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"deployments.{name}.user_config.{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(problems) from None


def side_channel_placement(config: GatewayConfig) -> dict[str, Any]:
    """The pools' extra argument with `server.side_channel`: where the directory actor goes."""
    if not config.server.side_channel:
        return {}
    return {"side_channel": dict(config.actors.resources)}


def used_deployments(config: GatewayConfig) -> set[str]:
    """The deployments this config sends calls to: the ingress, the pool of each provider
    type it has (unless that type runs inline), and the Router if fallback chains run there."""
    inline = set(config.server.inline_providers)
    used = {"Ingress"} | {POOL_NAMES[p.type] for p in config.providers if p.type not in inline}
    if config.routing.placement == "router":
        used.add("Router")
    return used


def __getattr__(name: str) -> Application:
    """`app`: the app built from the default config, for `serve build deployments.app:app`
    (which wants an application, not a builder); built on first use, not on import."""
    if name == "app":
        return build_app()
    raise AttributeError(name)


def teardown(timeout_s: float = 30.0) -> None:
    """Delete the app, drain the usage writer, and stop the registry and writer actors.

    The store keeps everything; the next `build_app` starts fresh actors that restore from it.
    """
    import ray
    from ray import serve

    from deployments.access_actor import ACCESS_NAME
    from deployments.quota_actor import QUOTA_NAME
    from deployments.registry_actor import NAMESPACE, REGISTRY_NAME
    from deployments.side_channel_directory import DIRECTORY_NAME
    from deployments.usage_writer import WRITER_NAME

    serve.delete(APP_NAME)
    for name in (WRITER_NAME, REGISTRY_NAME, ACCESS_NAME, QUOTA_NAME, DIRECTORY_NAME):
        try:
            actor = ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            continue
        if name == WRITER_NAME:
            try:
                ray.get(actor.drain.remote(), timeout=timeout_s)
            except Exception:
                logger.exception("the usage writer did not drain; records may be lost")
        ray.kill(actor)
