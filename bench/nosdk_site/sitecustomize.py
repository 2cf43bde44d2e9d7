"""bench/nosdk.py's patch in every Python process of a benchmark cluster: the `*-nosdk`
variants put this directory first on the PYTHONPATH of the Ray they start, so each Serve
replica's openai adapter skips the SDK's request path. An experiment, never a deployment."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nosdk

nosdk.install()
