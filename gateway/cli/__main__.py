"""`python -m gateway.cli` is `llmgw`."""

from gateway.cli import main

main()
