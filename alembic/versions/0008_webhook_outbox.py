"""webhook_outbox: one row per (event, endpoint), delivered in ``seq`` order per endpoint

``seq`` is an integer key (BIGSERIAL on PostgreSQL, the rowid on SQLite): the order of creation
the dispatcher keeps per endpoint. ``message_id`` is the ``webhook-id`` header.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 21:52:47.368743
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import authgate.core.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("endpoint_key", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("payload_key_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", authgate.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", authgate.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", authgate.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", authgate.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", authgate.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_webhook_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_webhook_outbox_message_id")),
    )
    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_outbox_endpoint_status_seq", ["endpoint_key", "status", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_webhook_outbox_status_next", ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_outbox_status_next")
        batch_op.drop_index("ix_webhook_outbox_endpoint_status_seq")

    op.drop_table("webhook_outbox")
