"""oauth_identities.linked_by_owner: identities the signed-in owner connected vs. identities that
created or joined the account by address

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:00:00.000000

Existing rows get ``false``: an identity linked through ``/link`` before this revision whose
address differs from its user's must be linked again (nothing recorded which flow made it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_identities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("linked_by_owner", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_identities", schema=None) as batch_op:
        batch_op.drop_column("linked_by_owner")
