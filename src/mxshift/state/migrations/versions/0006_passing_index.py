"""ix_message_passing: a partial index of the journal rows a pass left in flight

Why: every pass starts by asking whether the mailbox has a row to reconcile (a copy,
move or deletion recorded but not settled, or a flag change intended but not confirmed;
engine/reconcile.py ``Journal.any_passing``). Without an index on those states, SQLite
read every message row of the mailbox for it: ~2 ms of a ~25 ms no-change pass of a
5,000-message mailbox, growing with the mailbox (tests/test_no_change_cost.py), on every
pass, though the answer is nearly always "none". Indexed only where a row is in flight,
the question costs one lookup per folder pair whatever the mailbox's size, and the index
stays as small as what is in flight.

Revision ID: 0006_passing_index
Revises: 0005_pass_parts
"""
from alembic import op
import sqlalchemy as sa


revision = "0006_passing_index"
down_revision = "0005_pass_parts"
branch_labels = None
depends_on = None

# The same text as state/models.py PASSING (a partial index is used when the query's
# WHERE repeats its condition); written out, as a migration must not change with models.
PASSING = ("state IN ('pending', 'moving', 'deleting') OR pending_flags IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_message_passing", "message", ["folder_pair_id"],
                    sqlite_where=sa.text(PASSING), postgresql_where=sa.text(PASSING))


def downgrade() -> None:
    op.drop_index("ix_message_passing", table_name="message")
