"""State for the DNS cutover check (issue 5): one ``dns_check`` row per domain per run.

The dashboard and the completion gate read the latest row per domain. Besides the verdict and
the full JSON report, a row carries what the *next* check needs to say when the new MX was
first seen on every nameserver and when the old answer is gone from every cache:
``mx_everywhere_since`` is carried forward while the same MX stays everywhere, and
``old_mx_ttl`` remembers the TTL the old MX had while it was still served.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mxshift.state.models import Base, utcnow


class DnsCheck(Base):
    __tablename__ = "dns_check"
    __table_args__ = (Index("ix_dns_check_domain", "project_id", "domain", "checked_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    domain: Mapped[str] = mapped_column(String(253))
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    provider: Mapped[str] = mapped_column(String(20))
    verdict: Mapped[str] = mapped_column(String(10))  # ok|warning|error
    mx_hosts: Mapped[str] = mapped_column(Text, default="")  # "prio host,..." as the zone has it
    mx_ttl: Mapped[int | None] = mapped_column(Integer)
    mx_everywhere: Mapped[bool] = mapped_column(Boolean, default=False)  # new MX on every NS
    mx_everywhere_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    old_mx_ttl: Mapped[int | None] = mapped_column(Integer)
    old_answer_gone_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    details: Mapped[str] = mapped_column(Text)  # the JSON report of this domain
