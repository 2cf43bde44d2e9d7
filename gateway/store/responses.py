"""The store's responses table: what `/v1/responses` keeps for conversations, per tenant.

Every lookup names the tenant: another tenant's response id is not found, never forbidden, so
ids say nothing about who else uses the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, delete, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.schema import Base, Json, UTCDateTime


class ResponseRow(Base):
    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_tenant_created", "tenant", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    model: Mapped[str] = mapped_column(String(200))
    previous_response_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    response: Mapped[dict[str, Any]] = mapped_column(Json)
    input_items: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    context_items: Mapped[list[dict[str, Any]]] = mapped_column(Json)


@dataclass(frozen=True)
class StoredResponse:
    """A kept response: the Response object as served, this turn's input items, and the
    conversation items that came before them (so a follow-up takes one read)."""

    id: str
    tenant: str
    created_at: datetime
    model: str
    previous_response_id: str | None
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    context_items: list[dict[str, Any]]

    def conversation(self) -> list[dict[str, Any]]:
        """Every item of the conversation up to and including this response's output."""
        return [*self.context_items, *self.input_items, *self.response.get("output", [])]


class ResponseTables:
    """Kept responses; mixed into `Store`, which supplies the transactions."""

    _reading: Any
    _writing: Any

    def save_response(self, stored: StoredResponse) -> None:
        with self._writing() as conn:
            conn.execute(insert(ResponseRow).values(**stored.__dict__))

    def load_response(self, tenant: str, response_id: str) -> StoredResponse | None:
        """The tenant's response by id; None if there is none, or it is another tenant's."""
        with self._reading() as conn:
            row = (
                conn.execute(
                    select(ResponseRow.__table__).where(
                        ResponseRow.id == response_id, ResponseRow.tenant == tenant
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else StoredResponse(**row)

    def delete_response(self, tenant: str, response_id: str) -> bool:
        """Forget the tenant's response; False if it had none by that id."""
        with self._writing() as conn:
            result = conn.execute(
                delete(ResponseRow).where(
                    ResponseRow.id == response_id, ResponseRow.tenant == tenant
                )
            )
            return bool(result.rowcount)
