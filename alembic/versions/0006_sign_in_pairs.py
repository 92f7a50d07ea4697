"""sign_in_pairs: the IP + User-Agent pairs each account signed in from (keyed hashes)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 11:00:00.000000

What the new-sign-in alert compares a sign-in with. Starts empty: until an account has signed in
once from a pair after this revision, the alert also looks at the sessions still stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import authgate.core.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in_pairs",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("pair_hash", sa.String(length=64), nullable=False),
        sa.Column("last_seen_at", authgate.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("previous_seen_at", authgate.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sign_in_pairs_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "pair_hash", name=op.f("pk_sign_in_pairs")),
    )


def downgrade() -> None:
    op.drop_table("sign_in_pairs")
