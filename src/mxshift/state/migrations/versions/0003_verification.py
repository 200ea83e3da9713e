"""verification, verify_finding, acceptance (issue 4)

Revision ID: 0003_verify
Revises: 0002_dns
"""
from alembic import op
import sqlalchemy as sa


revision = "0003_verify"
down_revision = "0002_dns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deep", sa.Boolean(), nullable=False),
        sa.Column("verdict", sa.String(length=12), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailbox.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_verification_mailbox_id", "verification", ["mailbox_id"])
    op.create_table(
        "verify_finding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("verification_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("folder", sa.String(length=1000), nullable=False),
        sa.Column("other_folder", sa.String(length=1000), nullable=True),
        sa.Column("source_uid", sa.BigInteger(), nullable=True),
        sa.Column("destination_uid", sa.BigInteger(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("date", sa.String(length=100), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("explained", sa.Boolean(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(["verification_id"], ["verification.id"]),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailbox.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_verify_finding_verification_id", "verify_finding", ["verification_id"])
    op.create_index("ix_verify_finding_mailbox_id", "verify_finding", ["mailbox_id"])
    op.create_index("ix_verify_finding_key", "verify_finding", ["key"])
    op.create_table(
        "acceptance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("folder", sa.String(length=1000), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("accepted_by", sa.String(length=200), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailbox.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_acceptance_mailbox_id", "acceptance", ["mailbox_id"])
    op.create_index("ix_acceptance_key", "acceptance", ["key"])


def downgrade() -> None:
    op.drop_table("acceptance")
    op.drop_table("verify_finding")
    op.drop_table("verification")
