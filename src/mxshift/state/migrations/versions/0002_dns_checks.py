"""dns_check table (issue 5: DNS cutover readiness)

Revision ID: 0002_dns
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "0002_dns"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dns_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("mx_hosts", sa.Text(), nullable=False),
        sa.Column("mx_ttl", sa.Integer(), nullable=True),
        sa.Column("mx_everywhere", sa.Boolean(), nullable=False),
        sa.Column("mx_everywhere_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("old_mx_ttl", sa.Integer(), nullable=True),
        sa.Column("old_answer_gone_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dns_check_domain", "dns_check", ["project_id", "domain", "checked_at"])


def downgrade() -> None:
    op.drop_index("ix_dns_check_domain", table_name="dns_check")
    op.drop_table("dns_check")
