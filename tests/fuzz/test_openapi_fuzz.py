"""Schemathesis against the gateway's own OpenAPI document: every endpoint, `/admin` included,
called with the admin key; no 5xx from the gateway itself, and responses as documented."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from tests.fuzz.conftest import KEY, fuzz_app

app = fuzz_app()
# Generated cases only (a bounded number each): the coverage phase alone makes hundreds of
# cases for the chat request's schema, minutes on a 2-core runner.
config = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}})
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
# Schemathesis strips this header (by its exact name) to check that auth is enforced.
ADMIN = {"Authorization": f"Bearer {KEY}"}
# The routes whose JSON bodies the gateway validates itself.
MODEL_BODIES = r"^/(v1/chat/completions|v1/embeddings|admin/route/explain)$"
BOUNDED = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@BOUNDED
def test_every_endpoint_answers_as_documented(case: schemathesis.Case) -> None:
    # A body valid by the schema can still name a model that does not exist or ask for more
    # than the model allows: those 4xx are the gateway working. Query strings are all text,
    # so a `null` Schemathesis sends as one is the string "null", fine for a name filter.
    case.call_and_validate(
        headers=ADMIN, excluded_checks=[positive_data_acceptance, negative_data_rejection]
    )


@schema.include(method="POST", path_regex=MODEL_BODIES).parametrize()
@BOUNDED
def test_model_bodies_that_break_the_schema_are_refused(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=ADMIN, excluded_checks=[positive_data_acceptance])
