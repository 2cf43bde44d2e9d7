"""What the driver asks of the gateway before any call: the sweep's models, as its key sees
them, their providers, and the registry version."""

from __future__ import annotations

import httpx

from evals.client import model_request
from evals.sweep import Sweep, SweepError


def gateway_models(url: str, key: str, sweep: Sweep) -> tuple[dict[str, str], str | None]:
    """Every model the sweep names, checked against what the key may use: {model: provider}
    (for the per-provider rate), and the registry version when the key may read it."""
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        try:
            listing = http.get("/v1/models")
        except httpx.HTTPError as error:
            raise SweepError(f"cannot reach the gateway at {url}: {error}") from None
        if listing.status_code != 200:
            raise SweepError(f"the gateway refused the key: HTTP {listing.status_code}")
        known = {m["id"]: m.get("owned_by", "") for m in listing.json()["data"]}
        named = [(f"models[{i}]", m) for i, m in enumerate(sweep.models)]
        if sweep.judge is not None:
            named.append(("judge.model", sweep.judge.model))
        for i, spec in enumerate(sweep.scorers):
            if "model" in spec.params:
                named.append((f"scorers[{i}].model", str(spec.params["model"])))
        providers: dict[str, str] = {}
        for path, model in named:
            name, _ = model_request(model)
            if name == "auto":
                providers[model] = model
                continue
            if model in known:
                providers[model] = known[model]
                continue
            card = http.get(f"/v1/models/{model}")  # an alias resolves here
            if card.status_code != 200:
                raise SweepError(
                    f"'{model}' is not a model this key may use (expected one of: "
                    f"{', '.join(sorted(known))}, an alias, or auto:<use case>)",
                    path,
                )
            providers[model] = card.json().get("owned_by", "")
        status = http.get("/admin/status")
        version = status.json().get("registry", {}).get("version") if status.is_success else None
    return providers, version
