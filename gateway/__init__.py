"""llmgw: an enterprise LLM gateway on Ray Serve. This package is the library, Ray-free."""

__version__ = "0.1.0"
