"""What the app's Serve deployments are called and the options each is deployed with."""

from __future__ import annotations

from typing import Any

from gateway.config import DeploymentSettings

# The pool deployment of each provider type; with "Ingress" and "Router", every deployment
# the app can have (the config's `deployments:` section names them as gateway.config lists).
POOL_NAMES: dict[str, str] = {
    "sim": "SimPool",
    "openai": "OpenAIPool",
    "azure_openai": "AzureOpenAIPool",
    "anthropic": "AnthropicPool",
    "bedrock": "BedrockPool",
    "ollama": "OllamaPool",
}


def serve_options(settings: DeploymentSettings | None) -> dict[str, Any]:
    """Keyword arguments for `Deployment.options` from one deployment's config settings."""
    if settings is None:
        return {}
    options: dict[str, Any] = settings.model_dump(
        exclude_none=True, exclude={"num_cpus", "user_config"}
    )
    if settings.num_cpus is not None:
        options["ray_actor_options"] = {"num_cpus": settings.num_cpus}
    return options
