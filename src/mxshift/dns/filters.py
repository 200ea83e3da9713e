"""Third-party mail filtering services recognised by their MX host names.

When a domain's MX points at one of these, mail keeps flowing through it after the cutover:
the operator must repoint the *service's* delivery (its "smart host" / outbound route) to the
new provider's MX. The list is a starting point; projects add their own in ``[dns] filters``
as ``"Name=*.pattern"`` (fnmatch, case-insensitive).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch


@dataclass(frozen=True)
class FilterService:
    name: str
    patterns: tuple[str, ...]

    def matches(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(fnmatch(host, p.lower()) for p in self.patterns)


KNOWN: tuple[FilterService, ...] = (
    FilterService("Mimecast", ("*.mimecast.com", "*.mimecast.co.za")),
    FilterService("Proofpoint", ("*.pphosted.com", "*.ppe-hosted.com")),
    FilterService("Barracuda", ("*.barracudanetworks.com",)),
    FilterService("Cisco Secure Email", ("*.iphmx.com",)),
    FilterService("Sophos Email", ("*.hydra.sophos.com",)),
    FilterService("Trend Micro Email Security", ("*.tmes.trendmicro.com",
                                                 "*.tmes.trendmicro.eu")),
    FilterService("Hornetsecurity", ("*.hornetsecurity.com",)),
    FilterService("Symantec Email Security.cloud", ("*.messagelabs.com",)),
    FilterService("SpamExperts", ("*.antispamcloud.com",)),
)


def parse_filter(text: str) -> FilterService:
    """``"Acme Filter=*.acme-filter.example"`` (several patterns separated by commas)."""
    name, sep, patterns = text.partition("=")
    parts = tuple(p.strip() for p in patterns.split(",") if p.strip())
    if not sep or not name.strip() or not parts:
        raise ValueError(f"{text!r} is not NAME=PATTERN, like \"Acme=*.acme-filter.example\"")
    return FilterService(name.strip(), parts)


def find_filter(host: str, services: tuple[FilterService, ...] = KNOWN) -> FilterService | None:
    return next((s for s in services if s.matches(host)), None)
