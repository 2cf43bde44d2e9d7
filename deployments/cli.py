"""The `llmgw` console script: the library's commands plus `up` and `down`, which need Ray.

`python -m deployments.cli` runs it too.
"""

from __future__ import annotations

from deployments import lifecycle
from gateway.cli import app

lifecycle.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
