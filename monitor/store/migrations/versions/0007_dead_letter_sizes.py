"""Dead letters with sizes: the raw item is kept up to a byte cap, and the table is bounded
in bytes as well as rows.

Revision ID: 0007_dead_letter_sizes
Revises: 0006_kafka_checkpoints
Create Date: 2026-12-10

``raw_size`` and ``raw_bytes_size`` are the sizes of the raw item (its JSON text, UTF-8) and
of its raw bytes before truncation, ``raw_truncated`` and ``raw_bytes_truncated`` say whether
each was cut, and ``stored_bytes`` is what the row stores in all (what the table's byte
limit counts). Rows written before this revision were never cut: their sizes are measured
here, so the byte limit counts them too (a table bloated by huge items is trimmed at once).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_dead_letter_sizes"
down_revision: str | Sequence[str] | None = "0006_kafka_checkpoints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What a row costs besides its variable columns (ids, times, index entries): the same
# constant as monitor.store.dead_letters.ROW_OVERHEAD_BYTES at this revision.
ROW_OVERHEAD_BYTES = 200


def upgrade() -> None:
    with op.batch_alter_table("dead_letters", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("raw_size", sa.BigInteger(), nullable=False, server_default=sa.text("0")))
        batch.add_column(sa.Column("raw_truncated", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("raw_bytes_size", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("raw_bytes_truncated", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default=sa.text("0")))
    # Byte lengths: SQLite's length() of a BLOB; PostgreSQL's octet_length (JSON through text).
    if op.get_bind().dialect.name == "postgresql":
        raw, raw_bytes, headers = "octet_length(raw)", "octet_length(raw_bytes)", "octet_length(CAST(headers AS TEXT))"
        text = "octet_length(path) + octet_length(message)"
    else:
        raw, raw_bytes = "length(CAST(raw AS BLOB))", "length(raw_bytes)"
        headers = "length(CAST(headers AS BLOB))"
        text = "length(CAST(path AS BLOB)) + length(CAST(message AS BLOB))"
    op.execute(
        f"UPDATE dead_letters SET raw_size = {raw}, raw_bytes_size = {raw_bytes}, "
        f"stored_bytes = {raw} + COALESCE({raw_bytes}, 0) + COALESCE({headers}, 0) + {text} + {ROW_OVERHEAD_BYTES}"
    )


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", table_kwargs={"sqlite_autoincrement": True}) as batch:
        for name in ("stored_bytes", "raw_bytes_truncated", "raw_bytes_size", "raw_truncated", "raw_size"):
            batch.drop_column(name)
