"""pass.folders, pass.parent_id: a pass of some folder pairs of a mailbox (issue 9)

Why: a very large mailbox's pass is split into folder-pair tasks that several workers run
at once. Each part is a pass row restricted to ``folders`` (comma-separated folder pair
ids; NULL: the whole mailbox) under the plan pass ``parent_id``, so the lease can tell which
running passes overlap and the history can roll the parts up into one logical pass.

Revision ID: 0005_pass_parts
Revises: 0004_timeline
"""
from alembic import op
import sqlalchemy as sa


revision = "0005_pass_parts"
down_revision = "0004_timeline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pass") as b:
        b.add_column(sa.Column("folders", sa.Text(), nullable=True))
        b.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        b.create_foreign_key("fk_pass_parent_id", "pass", ["parent_id"], ["id"])
        b.create_index("ix_pass_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("pass") as b:
        b.drop_index("ix_pass_parent_id")
        b.drop_constraint("fk_pass_parent_id", type_="foreignkey")
        b.drop_column("parent_id")
        b.drop_column("folders")
