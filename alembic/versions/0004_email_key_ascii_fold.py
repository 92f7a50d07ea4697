"""email_key lowers ASCII letters of the local part only (no Unicode case-folding)

Unicode case-folding merged distinct mailboxes (``straße@`` and ``strasse@``, ``ﬁ`` and ``fi``).
The key is recomputed for every user from the stored (normalised) address. The new key is finer
than the old one, so the upgrade cannot create duplicates; the downgrade can (two users that
only case-folding merges) and then fails on the unique index, as it should.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 12:00:00.000000
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ASCII = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_USERS = sa.table(
    "users", sa.column("id", sa.Uuid()), sa.column("email", sa.String()), sa.column("email_key")
)


def _ascii_key(email: str) -> str:
    # A frozen copy of users/emails.py: email_key at this revision (migrations never import
    # application code, which may change later).
    local, at, domain = email.rpartition("@")
    if not at:
        return email.translate(_ASCII)
    return f"{local.translate(_ASCII)}@{domain.lower()}"


def _casefold_key(email: str) -> str:
    return email.casefold()


def _recompute(key: Callable[[str], str]) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_USERS.c.id, _USERS.c.email)).all()
    for user_id, email in rows:
        conn.execute(_USERS.update().where(_USERS.c.id == user_id).values(email_key=key(email)))


def upgrade() -> None:
    _recompute(_ascii_key)


def downgrade() -> None:
    _recompute(_casefold_key)
