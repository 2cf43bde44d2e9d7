"""Providers found from the environment: whose credentials are present, with their known models.

`discover()` adds OpenAI (OPENAI_API_KEY), Anthropic (ANTHROPIC_API_KEY), Azure OpenAI
(AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY), Bedrock (AWS credentials and a region) and
Ollama (OLLAMA_HOST, or one answering on localhost:11434), each with its models from the model
table (Ollama: the models it has installed), and says for every provider why it is on or off,
for `llmgw status`. `default_config()` is the built-in config plus what was discovered.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import httpx

from gateway.config import GatewayConfig, ModelConfig, ProviderConfig, load_config, parse_config
from gateway.providers.facts import FactsTable, load_model_facts

T = TypeVar("T")

OLLAMA_DEFAULT = "http://localhost:11434"


class ProviderStatus(NamedTuple):
    """One provider type's verdict: on or off, and why."""

    provider: str
    on: bool
    why: str


@dataclass
class Discovery:
    """What the environment offers: provider and model configs, and each provider's status."""

    providers: list[ProviderConfig] = field(default_factory=list)
    models: list[ModelConfig] = field(default_factory=list)
    report: list[ProviderStatus] = field(default_factory=list)

    def add(self, provider: ProviderConfig, models: list[ModelConfig], why: str) -> None:
        taken = {m.name for m in self.models}
        for model in models:
            if model.name in taken:  # the same model at a second provider: name it by provider
                model = model.model_copy(update={"name": f"{provider.name}/{model.upstream_id}"})
            taken.add(model.name)
            self.models.append(model)
        self.providers.append(provider)
        self.report.append(ProviderStatus(provider.name, True, why))

    def skip(self, provider: str, why: str) -> None:
        self.report.append(ProviderStatus(provider, False, why))


def discover(
    env: Mapping[str, str] | None = None,
    *,
    table: FactsTable | None = None,
    probe_ollama: bool = True,
) -> Discovery:
    """Every provider whose credentials are in `env` (default: the process environment)."""
    env = os.environ if env is None else env
    table = table or load_model_facts()
    found = Discovery()
    for check in (_openai, _anthropic, _azure, _bedrock):
        check(env, table, found)
    _ollama(env, found, probe=probe_ollama)
    return found


def default_config(
    env: Mapping[str, str] | None = None, **options: Any
) -> tuple[GatewayConfig, list[ProviderStatus]]:
    """The built-in config with every discovered provider and its models added."""
    base = load_config(None)
    found = discover(env, **options)
    data = base.model_dump(exclude_unset=True)
    data["providers"] = [
        *data.get("providers", []),
        *(p.model_dump(exclude_unset=True) for p in found.providers),
    ]
    data["models"] = [
        *data.get("models", []),
        *(m.model_dump(exclude_unset=True) for m in found.models),
    ]
    return parse_config(data, "<built-in default config + discovered providers>"), found.report


def with_installed_models(
    config: GatewayConfig, source: str
) -> tuple[GatewayConfig, list[ProviderStatus]]:
    """`config` plus the models each configured Ollama has installed that the config does not
    name already, and a status line per provider for `llmgw status`."""
    data = config.model_dump(exclude_unset=True)
    taken = {name for m in config.models for name in (m.name, *m.aliases)}
    taken |= {f"{m.provider}/{m.upstream_id}" for m in config.models}
    report = []
    added: list[dict[str, Any]] = []
    for provider in config.providers:
        if provider.type != "ollama":
            report.append(ProviderStatus(provider.name, True, f"in {source}"))
            continue
        try:
            installed = _run(lambda p=provider: _ollama_models(p))
        except Exception as exc:
            report.append(
                ProviderStatus(provider.name, True, f"in {source}; listing models failed: {exc}")
            )
            continue
        new = [
            m
            for m in installed
            if m.name not in taken and f"{m.provider}/{m.upstream_id}" not in taken
        ]
        added += [m.model_dump(exclude_unset=True) for m in new]
        taken |= {m.name for m in new}
        why = f"in {source}; {len(installed)} installed models, {len(new)} added"
        report.append(ProviderStatus(provider.name, True, why))
    if not added:
        return config, report
    data["models"] = [*data.get("models", []), *added]
    return parse_config(data, source), report


# ------------------------------------------------------------------------------ per provider


def _openai(env: Mapping[str, str], table: FactsTable, found: Discovery) -> None:
    if not env.get("OPENAI_API_KEY"):
        found.skip("openai", "OPENAI_API_KEY is not set")
        return
    provider = ProviderConfig(name="openai", type="openai", base_url=env.get("OPENAI_BASE_URL"))
    models = [row.model_config(provider.name) for row in table.rows("openai")]
    found.add(provider, models, f"OPENAI_API_KEY is set; {len(models)} models from the price table")


def _anthropic(env: Mapping[str, str], table: FactsTable, found: Discovery) -> None:
    if not env.get("ANTHROPIC_API_KEY"):
        found.skip("anthropic", "ANTHROPIC_API_KEY is not set")
        return
    provider = ProviderConfig(
        name="anthropic", type="anthropic", base_url=env.get("ANTHROPIC_BASE_URL")
    )
    models = [row.model_config(provider.name) for row in table.rows("anthropic")]
    found.add(
        provider, models, f"ANTHROPIC_API_KEY is set; {len(models)} models from the price table"
    )


def _azure(env: Mapping[str, str], table: FactsTable, found: Discovery) -> None:
    endpoint, key = env.get("AZURE_OPENAI_ENDPOINT"), env.get("AZURE_OPENAI_API_KEY")
    if not endpoint or not key:
        missing = " and ".join(
            name
            for name, value in (("AZURE_OPENAI_ENDPOINT", endpoint), ("AZURE_OPENAI_API_KEY", key))
            if not value
        )
        found.skip("azure_openai", f"{missing} {'is' if ' and ' not in missing else 'are'} not set")
        return
    provider = ProviderConfig(
        name="azure_openai",
        type="azure_openai",
        endpoint=endpoint,
        api_version=env.get("OPENAI_API_VERSION"),
    )
    # Deployment names are the user's choice; the usual one is the model's own name.
    models = [row.model_config(provider.name) for row in table.rows("azure_openai")]
    found.add(
        provider,
        models,
        f"AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY are set; {len(models)} models, "
        "assuming deployments named after their models (set `upstream` otherwise)",
    )


def _bedrock(env: Mapping[str, str], table: FactsTable, found: Discovery) -> None:
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    credentials, source = _aws_credentials(env)
    if not credentials:
        found.skip("bedrock", "no AWS credentials (environment, profile, SSO or web identity)")
        return
    region = region or _aws_profile_region(env)
    if not region:
        found.skip("bedrock", f"AWS credentials from {source}, but no region (set AWS_REGION)")
        return
    provider = ProviderConfig(name="bedrock", type="bedrock", region=region)
    models = [row.model_config(provider.name) for row in table.rows("bedrock")]
    found.add(
        provider,
        models,
        f"AWS credentials from {source}, region {region}; {len(models)} models from the price "
        "table (each needs model access enabled in the Bedrock console)",
    )


def _ollama(env: Mapping[str, str], found: Discovery, *, probe: bool) -> None:
    host = env.get("OLLAMA_HOST")
    if not host and not probe:
        found.skip("ollama", "OLLAMA_HOST is not set")
        return
    url = _ollama_url(host or OLLAMA_DEFAULT)
    try:
        httpx.get(f"{url}/api/version", timeout=httpx.Timeout(2.0, connect=0.5)).raise_for_status()
    except httpx.HTTPError as exc:
        named = f"OLLAMA_HOST is {host}, but " if host else "OLLAMA_HOST is not set and "
        found.skip("ollama", f"{named}no Ollama answers at {url} ({type(exc).__name__})")
        return
    provider = ProviderConfig(name="ollama", type="ollama", base_url=url)
    try:
        models = _run(lambda: _ollama_models(provider))
    except Exception as exc:  # an Ollama that answers /api/version but not /api/tags
        found.skip("ollama", f"Ollama at {url} answered, but listing its models failed: {exc}")
        return
    found.add(provider, models, f"Ollama answers at {url}; {len(models)} installed models")


async def _ollama_models(provider: ProviderConfig) -> list[ModelConfig]:
    from gateway.providers.ollama import OllamaProvider

    adapter = OllamaProvider(provider)
    try:
        return await adapter.discover()
    finally:
        await adapter.aclose()


def _ollama_url(host: str) -> str:
    """OLLAMA_HOST as the ollama CLI reads it: `host`, `host:port` or a URL; 0.0.0.0 is local."""
    url = httpx.URL(host if "://" in host else f"http://{host}")
    port = url.port or (443 if url.scheme == "https" and "://" in host else 11434)
    name = "127.0.0.1" if url.host in ("", "0.0.0.0") else url.host
    return f"{url.scheme}://{name}:{port}"


def _aws_credentials(env: Mapping[str, str]) -> tuple[bool, str]:
    """Whether the standard chain finds credentials, without asking instance metadata."""
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return True, "the environment"
    if env is not os.environ:
        return False, ""
    import botocore.exceptions
    import botocore.session

    session = botocore.session.Session()
    resolver = session.get_component("credential_provider")
    # Instance metadata is probed over the network with retries: seconds off EC2.
    resolver.remove("iam-role")
    try:
        credentials = resolver.load_credentials()
    except botocore.exceptions.BotoCoreError:
        return False, ""
    return (credentials is not None, getattr(credentials, "method", "the credential chain"))


def _aws_profile_region(env: Mapping[str, str]) -> str | None:
    if env is not os.environ:
        return None
    import botocore.session

    return botocore.session.Session().get_config_variable("region")


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even under a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(factory()))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
