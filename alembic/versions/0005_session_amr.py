"""auth_sessions.amr: the RFC 8176 method references of each sign-in

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 10:00:00.000000

Stored space-separated (``pwd``, ``pwd otp mfa``, ``fed``) and signed into every access token of
the session as the ``amr`` claim. Existing sessions are back-filled from ``auth_method``: a
password sign-in is ``pwd``, a provider sign-in (``oauth:<name>``) is ``fed``; anything else gets
none.

SQLite: the column is added with ``ALTER TABLE … ADD COLUMN`` and dropped with ``ALTER TABLE …
DROP COLUMN`` (SQLite ≥ 3.35), never by batch mode's copy of the table: the engine runs with
``PRAGMA foreign_keys=ON``, under which dropping the old copy of ``auth_sessions`` would
cascade-delete every refresh token. Hence the server default (``''``) stays on the column.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SESSIONS = sa.table("auth_sessions", sa.column("auth_method", sa.String()), sa.column("amr"))


def upgrade() -> None:
    op.add_column(
        "auth_sessions", sa.Column("amr", sa.String(length=64), server_default="", nullable=False)
    )
    op.execute(
        _SESSIONS.update().values(
            amr=sa.case(
                (_SESSIONS.c.auth_method == "password", "pwd"),
                (_SESSIONS.c.auth_method.like("oauth:%"), "fed"),
                else_="",
            )
        )
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE auth_sessions DROP COLUMN amr")
    else:
        op.drop_column("auth_sessions", "amr")
