"""users.roles, and the one-row service_revocation table (emergency revocation)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 22:30:00.000000

``users.roles`` is a JSON array of strings (``[]`` for every existing user), signed into every
access token as the ``roles`` claim. ``service_revocation`` holds one row (``id = 1``) whose
``not_before`` is set by ``POST /admin/sessions/revoke-all``: access tokens issued in an earlier
second are refused. The row is made here, with no instant, so revoke-all is one UPDATE.

SQLite: the column is added with ``ALTER TABLE … ADD COLUMN`` and dropped with ``ALTER TABLE …
DROP COLUMN``, never by batch mode's copy of ``users`` (``PRAGMA foreign_keys=ON`` would
cascade-delete every row that points at a user when the old copy is dropped).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import authgate.core.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("roles", sa.JSON(), server_default="[]", nullable=False))
    revocation = op.create_table(
        "service_revocation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("not_before", authgate.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_service_revocation_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_revocation")),
    )
    op.bulk_insert(revocation, [{"id": 1, "not_before": None}])


def downgrade() -> None:
    op.drop_table("service_revocation")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE users DROP COLUMN roles")
    else:
        op.drop_column("users", "roles")
