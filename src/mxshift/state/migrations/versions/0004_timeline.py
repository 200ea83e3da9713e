"""timeline, schedule_run, stray_message, source_change, setting; mailbox.cutover_at (issue 6)

Revision ID: 0004_timeline
Revises: 0003_verify
"""
from alembic import op
import sqlalchemy as sa


revision = "0004_timeline"
down_revision = "0003_verify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox") as b:
        b.add_column(sa.Column("cutover_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "timeline",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("prestage_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delta_interval_s", sa.Integer(), nullable=True),
        sa.Column("cutover_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cutover_done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cutover_forced_by", sa.String(length=200), nullable=True),
        sa.Column("cutover_note", sa.Text(), nullable=True),
        sa.Column("sweep_interval_s", sa.Integer(), nullable=True),
        sa.Column("sweep_window_s", sa.Integer(), nullable=True),
        sa.Column("sweep_ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("project_id"),
    )
    op.create_table(
        "schedule_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("slot_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("mailboxes", sa.Integer(), nullable=False),
        sa.Column("copied", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "kind", "slot_at"),
    )
    op.create_index("ix_schedule_run_project_id", "schedule_run", ["project_id"])
    op.create_table(
        "stray_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("pass_id", sa.Integer(), nullable=True),
        sa.Column("folder", sa.String(length=1000), nullable=False),
        sa.Column("source_uid", sa.BigInteger(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_by", sa.Text(), nullable=True),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailbox.id"]),
        sa.ForeignKeyConstraint(["pass_id"], ["pass.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stray_message_mailbox_id", "stray_message", ["mailbox_id"])
    op.create_table(
        "source_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("pass_id", sa.Integer(), nullable=True),
        sa.Column("folder", sa.String(length=1000), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailbox.id"]),
        sa.ForeignKeyConstraint(["pass_id"], ["pass.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_source_change_mailbox_id", "source_change", ["mailbox_id"])
    op.create_table(
        "setting",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    for t in ("setting", "source_change", "stray_message", "schedule_run", "timeline"):
        op.drop_table(t)
    with op.batch_alter_table("mailbox") as b:
        b.drop_column("cutover_at")
