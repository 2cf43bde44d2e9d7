"""The Serve wiring: deployments, actors and the `llmgw` command's Ray side.

Every Ray worker that runs gateway code imports this package first, so its metrics go
through Ray's exporter (`deployments.observability`).
"""

from deployments import observability  # noqa: F401  (sets the metrics sink; see above)
