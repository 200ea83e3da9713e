"""What a DNS check produces: one ``Check`` per finding, with a verdict in plain words."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Verdict = Literal["ok", "warning", "error"]
_RANK = {"ok": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class Check:
    """``record`` names what was looked at ("MX", "SPF", "autodiscover", "nameservers", ...);
    ``found`` and ``expected`` are human-readable values (None when there is nothing to show);
    ``message`` is a sentence the operator can act on."""

    record: str
    verdict: Verdict
    found: str | None
    expected: str | None
    message: str

    def as_json(self) -> dict[str, str | None]:
        return asdict(self)


def worst(verdicts: list[Verdict] | list[Check]) -> Verdict:
    """The most serious verdict; ``ok`` for an empty list."""
    values = [v.verdict if isinstance(v, Check) else v for v in verdicts]
    return max(values, key=_RANK.__getitem__, default="ok")
