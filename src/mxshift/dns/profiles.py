"""What "ready for the cutover" means per target provider, and the pure evaluation of the
records found against it.

Every function here takes values already looked up (:class:`~mxshift.dns.records.Answer`)
and returns :class:`~mxshift.dns.model.Check` s; nothing here does I/O, so the wording and
the verdicts are tested without DNS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatch

from mxshift.dns import spf
from mxshift.dns.filters import KNOWN, FilterService, find_filter
from mxshift.dns.model import Check, worst
from mxshift.dns.records import Answer, Mx
from mxshift.errors import MxshiftError

PROVIDERS = ("m365", "google", "custom")
GOOGLE_MX = ("smtp.google.com",)
GOOGLE_LEGACY_MX = ("aspmx.l.google.com", "alt1.aspmx.l.google.com", "alt2.aspmx.l.google.com",
                    "alt3.aspmx.l.google.com", "alt4.aspmx.l.google.com",
                    "aspmx2.googlemail.com", "aspmx3.googlemail.com",
                    "aspmx4.googlemail.com", "aspmx5.googlemail.com")
M365_LOOKALIKE = ("*.mail.protection.outlook.com", "*.mx.microsoft")


class ProfileError(MxshiftError):
    """The profile cannot be built from what the project file and options say."""


@dataclass(frozen=True)
class Profile:
    name: str
    label: str
    mx_hosts: tuple[str, ...] = ()  # exact hosts that count as "the new MX"
    mx_lookalike: tuple[str, ...] = ()  # patterns accepted with a warning
    lookalike_hint: str = ""
    spf_includes: tuple[str, ...] = ()
    autodiscover: str | None = None  # required CNAME target of autodiscover.DOMAIN
    dkim_cnames: tuple[str, ...] = ()  # selectors that must be CNAMEs
    dkim_txt: tuple[str, ...] = ()  # selectors that must hold a DKIM key TXT
    dmarc: bool = True
    filters: tuple[FilterService, ...] = field(default=KNOWN)

    @property
    def mx_expected(self) -> str:
        return ", ".join(self.mx_hosts) or " or ".join(self.mx_lookalike)


def make_profile(provider: str, domain: str, *, m365_mx: dict[str, str] | None = None,
                 mx: tuple[str, ...] = (), spf_includes: tuple[str, ...] = (),
                 filters: tuple[FilterService, ...] = ()) -> Profile:
    """The profile for ``domain``. ``m365_mx`` maps a domain to its tenant MX host (Microsoft
    issues one per domain); ``mx``/``spf_includes`` are the custom expectations."""
    all_filters = KNOWN + tuple(filters)
    if provider == "m365":
        tenant = (m365_mx or {}).get(domain)
        return Profile(
            "m365", "Microsoft 365",
            mx_hosts=(tenant.lower().rstrip("."),) if tenant else (),
            mx_lookalike=() if tenant else M365_LOOKALIKE,
            lookalike_hint=f"set [dns] m365_mx for {domain} in mxshift.toml to check the "
                           f"exact tenant host",
            spf_includes=("spf.protection.outlook.com",),
            autodiscover="autodiscover.outlook.com",
            dkim_cnames=("selector1", "selector2"),
            filters=all_filters)
    if provider == "google":
        return Profile("google", "Google Workspace", mx_hosts=GOOGLE_MX + GOOGLE_LEGACY_MX,
                       spf_includes=("_spf.google.com",), dkim_txt=("google",),
                       filters=all_filters)
    if provider == "custom":
        if not mx:
            raise ProfileError("provider custom needs the expected MX hosts: set [dns] mx in "
                               "mxshift.toml")
        return Profile("custom", "the new provider",
                       mx_hosts=tuple(h.lower().rstrip(".") for h in mx),
                       spf_includes=tuple(s.lower() for s in spf_includes), dmarc=False,
                       filters=all_filters)
    raise ProfileError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")


def _failed(record: str, name: str, answer: Answer, expected: str | None) -> Check:
    return Check(record, "error", None, expected,
                 f"could not look up {name}: {answer.describe()}")


# -- MX ----------------------------------------------------------------------------------


def evaluate_mx(profile: Profile, domain: str, answer: Answer) -> list[Check]:
    expected = profile.mx_expected
    if answer.failed:
        return [_failed("MX", f"the MX of {domain}", answer, expected)]
    mxs: list[Mx] = sorted(answer.values)
    if not mxs:
        return [Check("MX", "error", None, expected,
                      f"{domain} has no MX record: add one pointing at {expected}")]
    found = ", ".join(str(m) for m in mxs)
    checks: list[Check] = []
    good = lookalike = 0
    filtered: list[tuple[Mx, FilterService]] = []
    for m in mxs:
        if m.host in profile.mx_hosts:
            good += 1
        elif any(fnmatch(m.host, p) for p in profile.mx_lookalike):
            lookalike += 1
            checks.append(Check("MX", "warning", str(m), expected,
                                f"MX {m.host} looks like {profile.label}; "
                                f"{profile.lookalike_hint}"))
        elif (service := find_filter(m.host, profile.filters)) is not None:
            filtered.append((m, service))
        else:
            checks.append(Check("MX", "error", str(m), expected,
                                f"MX still lists {m.host} (priority {m.priority}): remove it"))
    for m, service in filtered:
        checks.append(Check("MX", "warning", str(m), expected,
                            f"MX points at {service.name} ({m.host}), a filtering service: "
                            f"repoint its delivery to {expected} and keep its MX"))
    if not good and not lookalike and not filtered:
        checks.append(Check("MX", "error", found, expected,
                            f"MX does not point at {profile.label}: add {expected}"))
    if not checks:
        checks.append(Check("MX", "ok", found, expected, f"MX points at {profile.label}"))
    return checks


def mx_is_new(profile: Profile, domain: str, answer: Answer) -> bool:
    """Whether ``answer`` is the target MX set (nothing left to remove or add)."""
    return answer.ok and worst(evaluate_mx(profile, domain, answer)) != "error"


# -- SPF ---------------------------------------------------------------------------------


def spf_records(answer: Answer) -> list[str]:
    return [t for t in answer.values if spf.is_spf(t)] if answer.ok else []


def evaluate_spf(profile: Profile, domain: str, answer: Answer,
                 count: spf.LookupCount | None) -> list[Check]:
    """``count`` is the recursive look-up count of the single record (None if not counted)."""
    wanted = " ".join(f"include:{i}" for i in profile.spf_includes)
    expected = f"one TXT \"v=spf1 {wanted} -all\"" if wanted else "one SPF TXT record"
    if answer.failed:
        return [_failed("SPF", f"the TXT records of {domain}", answer, expected)]
    records = spf_records(answer)
    if not records:
        return [Check("SPF", "error", None, expected,
                      f"{domain} has no SPF record: add TXT \"v=spf1 {wanted} -all\"")]
    if len(records) > 1:
        return [Check("SPF", "error", " | ".join(records), expected,
                      f"{len(records)} SPF records: merge them into one (receivers treat "
                      f"more than one as a permanent error and may reject mail)")]
    record = records[0]
    try:
        present = spf.includes(record)
    except spf.SpfSyntaxError as exc:
        return [Check("SPF", "error", record, expected, f"SPF record {exc}: fix it")]
    checks = [Check("SPF", "error", record, expected, f"SPF lacks include:{i}: add it")
              for i in profile.spf_includes if i not in present]
    if count is not None:
        if count.over_limit:
            checks.append(Check("SPF", "error", record, f"at most {spf.LOOKUP_LIMIT} lookups",
                                f"SPF needs {count.lookups} DNS lookups, more than the limit "
                                f"of {spf.LOOKUP_LIMIT}: remove or flatten includes"))
        checks += [Check("SPF", "warning", record, expected, p) for p in count.problems]
    if not checks:
        used = f"; {count.lookups} of {spf.LOOKUP_LIMIT} DNS lookups" if count else ""
        checks.append(Check("SPF", "ok", record, expected, f"one SPF record{used}"))
    return checks


# -- Autodiscover, DKIM, DMARC -------------------------------------------------------------


def evaluate_autodiscover(profile: Profile, domain: str, answer: Answer) -> list[Check]:
    if profile.autodiscover is None:
        return []
    name = f"autodiscover.{domain}"
    want = profile.autodiscover
    if answer.failed:
        return [_failed("autodiscover", name, answer, want)]
    if not answer.values:
        return [Check("autodiscover", "error", None, want,
                      f"no autodiscover CNAME: add {name} CNAME {want}")]
    target = answer.values[0]
    if target != want:
        return [Check("autodiscover", "error", target, want,
                      f"{name} points at {target}: change it to {want}")]
    return [Check("autodiscover", "ok", target, want, f"{name} points at {want}")]


def evaluate_dkim(profile: Profile, domain: str, selector: str, answer: Answer,
                  kind: str) -> list[Check]:
    name = f"{selector}._domainkey.{domain}"
    record = f"DKIM {selector}"
    want = "a CNAME to the provider's key" if kind == "CNAME" else "a TXT \"v=DKIM1; ... p=...\""
    if answer.failed:
        return [_failed(record, name, answer, want)]
    if not answer.values:
        return [Check(record, "error", None, want,
                      f"no {kind} at {name}: publish the key {profile.label} shows for "
                      f"{domain}, then turn DKIM signing on")]
    if kind == "TXT" and not any(re.search(r"(^|;)\s*p=", v) for v in answer.values):
        return [Check(record, "error", " | ".join(answer.values), want,
                      f"{name} holds no DKIM public key (p=)")]
    return [Check(record, "ok", " | ".join(answer.values), want, f"{name} is published")]


def parse_dmarc(txt: str) -> dict[str, str]:
    """Tags of a DMARC record; ValueError when it is not one."""
    parts = [p.strip() for p in txt.split(";") if p.strip()]
    if not parts or parts[0].replace(" ", "") != "v=DMARC1":
        raise ValueError("does not start with v=DMARC1")
    tags = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"tag {part!r} is not key=value")
        tags[key.strip().lower()] = value.strip()
    if tags.get("p") not in ("none", "quarantine", "reject"):
        raise ValueError("needs p=none, p=quarantine or p=reject")
    return tags


def evaluate_dmarc(profile: Profile, domain: str, answer: Answer) -> list[Check]:
    if not profile.dmarc:
        return []
    name = f"_dmarc.{domain}"
    want = "TXT \"v=DMARC1; p=...\""
    if answer.failed:
        return [_failed("DMARC", name, answer, want)]
    records = [v for v in answer.values if v.strip().lower().startswith("v=dmarc1")]
    if not records:
        return [Check("DMARC", "error", None, want,
                      f"no DMARC record: add {name} TXT \"v=DMARC1; p=none; "
                      f"rua=mailto:...\" (tighten p= later)")]
    if len(records) > 1:
        return [Check("DMARC", "error", " | ".join(records), want,
                      f"{len(records)} DMARC records at {name}: keep one")]
    try:
        tags = parse_dmarc(records[0])
    except ValueError as exc:
        return [Check("DMARC", "error", records[0], want, f"DMARC record {exc}")]
    return [Check("DMARC", "ok", records[0], want, f"DMARC policy p={tags['p']}")]
