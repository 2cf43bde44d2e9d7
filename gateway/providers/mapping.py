"""Old import path of `THINKING_FIELD`, kept until `gateway/apis/*` import it from
`gateway.providers.thinking`. What this module held now lives in modules named for it:
`credentials`, `upstream_errors`, `stainless`, `deadline`, `json_output`, `thinking`, `turns`,
`streams`, `embeddings`, and `base.Provider.check` for declared capabilities."""

from __future__ import annotations

from gateway.providers.thinking import THINKING_FIELD

__all__ = ["THINKING_FIELD"]
