"""The project file ``mxshift.toml``, parsed into models.

Why so strict: a migration runs unattended for hours against thousands of mailboxes. A typo
that silently falls back to a default (``prot = 993``, a CA file option on the wrong server)
costs far more than a refusal at start-up, so unknown keys, wrong types and out-of-range values
are errors that name the file, the line and the key.

The mailbox list next to it (``mailboxes.csv``) has its own module,
:mod:`mxshift.mailbox_csv`: it is read row by row and reports every problem at once, a
different job from this typed, key-by-key TOML reading.

Nothing here talks to a server or reads a secret; parsing is pure and fast.
"""

from __future__ import annotations

import codecs
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from mxshift.config_table import (
    _choice,
    _Context,
    _integer,
    _kind,
    _number,
    _size,
    _string,
    _string_list,
    _Table,
)
from mxshift.errors import ConfigError
from mxshift.oauth.settings import OAuthSettings, parse_oauth
from mxshift.providers import (PROFILES, PROVIDER_NAMES, destination_renames,
                               source_exclusions)
from mxshift.secrets import SecretRef
from mxshift.store.mechanisms import MECHANISMS  # not store.auth: no imapclient
from mxshift.store.throttle import ThrottleSettings
from mxshift.schedule.settings import ScheduleSettings, parse_schedule

PROJECT_FILE = "mxshift.toml"
MAILBOX_FILE = "mailboxes.csv"

Security = Literal["tls", "starttls", "none"]
AdminMode = Literal["sasl", "dovecot"]
SECURITY_CHOICES: tuple[Security, ...] = ("tls", "starttls", "none")
ADMIN_MODES: tuple[AdminMode, ...] = ("sasl", "dovecot")

_MiB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# Models


@dataclass(frozen=True)
class AdminLogin:
    """A master login that can open every mailbox, so the CSV need not hold user passwords.

    ``sasl``: AUTHENTICATE PLAIN with the mailbox user as authorization identity (RFC 4616;
    Dovecot, Cyrus, Exchange impersonation). ``dovecot``: LOGIN ``user<separator>admin``
    (Dovecot master users).
    """

    user: str
    password: SecretRef
    mode: AdminMode = "sasl"
    separator: str = "*"


@dataclass(frozen=True)
class Endpoint:
    """One IMAP server. ``verify_tls`` is only False when the config named this very host in
    ``insecure_skip_verify_host``."""

    host: str
    port: int
    security: Security
    ca_file: str | None = None
    verify_tls: bool = True
    admin: AdminLogin | None = None
    max_connections: int = 10
    disable_capabilities: frozenset[str] = frozenset()
    timeout: float = 60.0
    # issue 8: provider profile, login mechanism and token source, back-pressure
    provider: str | None = None            # key of mxshift.providers.PROFILES
    auth: str = "password"                 # password | xoauth2 | oauthbearer
    oauth: OAuthSettings | None = None     # [x.oauth], required unless auth = password
    throttle: ThrottleSettings = ThrottleSettings()
    max_message_size: int | None = None    # the provider's limit (destination side)


@dataclass(frozen=True)
class RenameRule:
    """Rename folders whose whole path (``/``-joined) matches ``pattern``; ``replacement`` may
    use ``\\1`` / ``\\g<name>``. Both are checked when the config is loaded, so a typo stops
    the run before any folder is created under a wrong name."""

    pattern: str
    replacement: str


@dataclass(frozen=True)
class FolderRules:
    """Which folders to copy and under what name, as written in the config.

    Applying them (fnmatch globs over the ``/``-joined path, exclude wins, first matching rename
    wins) is :func:`mxshift.mapping.map_folders`' job; the field names match its
    ``MappingRules`` so this can be handed over as is.
    """

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    renames: tuple[RenameRule, ...] = ()


@dataclass(frozen=True)
class PassOptions:
    """Knobs of one sync pass. Sizes are bytes."""

    max_message_size: int | None = None
    deletion_ceiling: float = 0.10
    deletion_floor: int = 10
    batch_messages: int = 200
    batch_bytes: int = 8 * _MiB  # the whole run's message data in memory (sync.py)
    mailbox_parallelism: int = 4
    # Connections per side one mailbox pass may use, copying folders in parallel; keep it
    # under the provider's per-user limit (Gmail ~15, Microsoft 365 ~20 per mailbox).
    folder_parallelism: int = 4
    # A message found in several source folders, going to a Gmail destination: "folders"
    # appends a copy per folder; "labels" appends it once and adds the other folders as
    # Gmail labels (X-GM-LABELS). See engine/gmail_labels.py.
    gmail_labels: str = "folders"


@dataclass(frozen=True)
class DistributedSettings:
    """``[distributed]``: how Celery workers share one very large mailbox (engine/folder_tasks.py).

    A pass with more than ``split_mailbox_above`` bytes to copy (None: never) hands its
    folders to up to ``split_parts`` folder-pair tasks, so several workers copy one mailbox
    at once. Only the Celery runner splits; the local runner copies folders in parallel
    within its process (``folder_parallelism``)."""

    split_mailbox_above: int | None = 20 * 1024 * _MiB
    split_parts: int = 8


@dataclass(frozen=True)
class DnsSettings:
    """``[dns]``: what ``mxshift dns check`` expects and whom it asks (see :mod:`mxshift.dns`).
    ``m365_mx`` maps a domain to its Microsoft 365 tenant MX host; ``resolvers`` are
    ``IP[:PORT]``, ``ns_addresses`` ``NAME=IP[:PORT]``, ``filters`` ``"Name=*.pattern"``."""

    provider: str | None = None
    m365_mx: tuple[tuple[str, str], ...] = ()
    mx: tuple[str, ...] = ()
    spf_includes: tuple[str, ...] = ()
    resolvers: tuple[str, ...] = ()
    ns_addresses: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    timeout: float = 2.0


@dataclass(frozen=True)
class NotifySettings:
    """``[notify]``: tell the operator (never the migrated users) about pass failures,
    verification failures and completion, by email over SMTP and/or a webhook POST."""

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"   # starttls | tls | none
    smtp_user: str | None = None
    smtp_password: SecretRef | None = None
    sender: str = "mxshift@localhost"
    to: tuple[str, ...] = ()
    webhook: str | None = None
    events: tuple[str, ...] = ("pass_failed", "verify_failed", "complete")


@dataclass(frozen=True)
class ProjectConfig:
    """Everything ``mxshift.toml`` says. ``directory`` is absolute: relative paths in the file
    (``ca_file``, ``file:`` passwords) were resolved against it, not against the cwd."""

    name: str
    domains: tuple[str, ...]
    source: Endpoint
    destination: Endpoint
    folders: FolderRules
    options: PassOptions
    directory: Path
    dns: DnsSettings = DnsSettings()
    notify: NotifySettings = NotifySettings()
    schedule: ScheduleSettings = ScheduleSettings()
    distributed: DistributedSettings = DistributedSettings()

    @property
    def mailbox_path(self) -> Path:
        return self.directory / MAILBOX_FILE


# --------------------------------------------------------------------------------------------
# mxshift.toml


def load_project(directory: Path) -> ProjectConfig:
    """Read ``DIRECTORY/mxshift.toml``."""
    directory = Path(directory)
    path = directory / PROJECT_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no {PROJECT_FILE} in {directory}; run `mxshift init` there to "
                          f"create one", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("not valid UTF-8; save the file as UTF-8", path=str(path),
                          line=data[:exc.start].count(b"\n") + 1) from None
    return parse_project(text, path=str(path), directory=directory)


def parse_project(text: str, *, path: str, directory: Path) -> ProjectConfig:
    """Parse the text of a project file; ``path`` is only used in error messages."""
    text = text.removeprefix("\ufeff")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, text, path) from None
    directory = Path(directory).absolute()
    root = _Table(_Context(path, text), raw, ())
    root.allow("project", "source", "destination", "folders", "options", "dns", "notify",
               "schedule", "distributed")
    project = root.table("project")
    name = _string(project, "name", directory.name or "mxshift")
    domains = tuple(_domain(project, d) for d in _string_list(project, "domains", ()))
    source = _endpoint(root.table("source", required=True), directory)
    source_profile = PROFILES[source.provider] if source.provider else None
    destination = _endpoint(root.table("destination", required=True), directory)
    return ProjectConfig(
        name=name,
        domains=domains,
        source=source,
        destination=destination,
        folders=_with_exclusions(_folders(root.table("folders")), source_profile,
                                 PROFILES[destination.provider] if destination.provider
                                 else None),
        options=_options(root.table("options")),
        directory=directory,
        dns=_dns(root.table("dns")),
        notify=_notify(root.table("notify"), directory),
        schedule=parse_schedule(root.table("schedule")),
        distributed=_distributed(root.table("distributed")),
    )


def _with_exclusions(rules: FolderRules, prof, dest_prof) -> FolderRules:  # type: ignore[no-untyped-def]
    """Add a source provider's virtual folders (Gmail's All Mail, Important, Starred) to
    the exclude patterns (they are views of the label folders, copied once from those), and
    a destination provider's reserved names to the renames, after the admin's own."""
    extra = tuple(p for p in source_exclusions(prof) if p not in rules.exclude)
    renames = tuple(RenameRule(p, r) for p, r in destination_renames(dest_prof))
    return replace(rules, exclude=rules.exclude + extra, renames=rules.renames + renames)


def _toml_error(exc: tomllib.TOMLDecodeError, text: str, path: str) -> ConfigError:
    message = str(exc)
    at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if at:
        return ConfigError(f"invalid TOML: {message[:at.start()]} (column {at.group(2)})",
                           path=path, line=int(at.group(1)))
    end = re.search(r"\s*\(at end of document\)$", message)
    if end:
        last = text.rstrip("\n").count("\n") + 1
        return ConfigError(f"invalid TOML: {message[:end.start()]} at the end of the file",
                           path=path, line=last)
    return ConfigError(f"invalid TOML: {message}", path=path)


def _endpoint(t: _Table, directory: Path) -> Endpoint:
    t.allow("host", "port", "security", "ca_file", "insecure_skip_verify_host",
            "max_connections", "disable_capabilities", "timeout", "admin",
            "provider", "auth", "oauth", "throttle", "max_message_size")
    provider = _choice(t, "provider", PROVIDER_NAMES + (None,), None)
    prof = PROFILES[provider] if provider else None
    if prof is not None and prof.host and "host" not in t.data:
        host = prof.host
    else:
        host = _string(t, "host")
    if re.search(r"\s", host) or "://" in host or "/" in host:
        raise t.fail("host", f"must be a bare host name or address like mail.example.com "
                             f"(got {host!r})")
    security = _choice(t, "security", SECURITY_CHOICES, prof.security if prof else "tls")
    port = _integer(t, "port", prof.port if prof and "security" not in t.data else
                    993 if security == "tls" else 143, minimum=1, maximum=65535)
    auth = _choice(t, "auth", MECHANISMS, prof.auth if prof else "password")
    oauth_table = t.table("oauth")
    if auth != "password" and not oauth_table.present:
        raise t.fail("auth", f"is {auth!r}: add a [{'.'.join(map(str, t.keypath))}.oauth] table "
                             f"naming the token_provider")
    oauth = parse_oauth(oauth_table, directory,
                        default_provider=prof.token_provider if prof else None) \
        if oauth_table.present else None
    ca_file = _string(t, "ca_file", None)
    if ca_file is not None:
        ca_file = str(_anchor(Path(ca_file), directory))
    skip = _string(t, "insecure_skip_verify_host", None)
    if skip is not None and skip.lower() != host.lower():
        raise t.fail("insecure_skip_verify_host",
                     f"is {skip!r} but host is {host!r}; it turns certificate checks off only "
                     f"for the host it names, so a copied config does not inherit it by "
                     f"accident. Set it to {host!r} or remove it")
    caps = _string_list(t, "disable_capabilities", ())
    for cap in caps:
        if not re.fullmatch(r"[A-Za-z0-9=+._-]+", cap):
            raise t.fail("disable_capabilities", f"entry {cap!r} is not an IMAP capability "
                                                 f"name (like QRESYNC or COMPRESS=DEFLATE)")
    return Endpoint(
        host=host,
        port=port,
        security=security,
        ca_file=ca_file,
        verify_tls=skip is None,
        admin=_admin(t.table("admin"), directory),
        max_connections=_integer(t, "max_connections",
                                 prof.max_connections if prof else 10, minimum=1),
        disable_capabilities=frozenset(c.upper() for c in caps),
        timeout=_number(t, "timeout", 60.0),
        provider=provider,
        auth=auth,
        oauth=oauth,
        throttle=_throttle(t.table("throttle"), "user" if provider == "gmail" else "server"),
        max_message_size=_size(t, "max_message_size",
                               prof.max_message_size if prof else None),
    )


def _throttle(t: _Table, day_scope: str = "server") -> ThrottleSettings:
    """``[x.throttle]``: how long a pass may wait out the server, and rate limits.
    ``day_scope``: the provider's default bytes_per_day_scope (Gmail's cap is per user)."""
    t.allow("max_total_wait", "default_wait", "max_single_wait", "messages_per_second",
            "bytes_per_second", "bytes_per_day", "connection_recovery", "bytes_per_day_scope")
    if not t.present:
        return ThrottleSettings(bytes_per_day_scope=day_scope)
    mps = t.get("messages_per_second", None)
    return ThrottleSettings(
        max_total_wait=_number(t, "max_total_wait", 1800.0),
        default_wait=_number(t, "default_wait", 5.0),
        max_single_wait=_number(t, "max_single_wait", 300.0),
        messages_per_second=_number(t, "messages_per_second", 1.0) if mps is not None else None,
        bytes_per_second=_size(t, "bytes_per_second", None),
        bytes_per_day=_size(t, "bytes_per_day", None),
        connection_recovery=_number(t, "connection_recovery", 300.0),
        bytes_per_day_scope=_choice(t, "bytes_per_day_scope", ("user", "server"), day_scope),
    )


def _admin(t: _Table, directory: Path) -> AdminLogin | None:
    if not t.present:
        return None
    t.allow("user", "password", "mode", "separator")
    user = _string(t, "user")
    cell = _string(t, "password", secret=True)
    try:
        password = anchor_ref(SecretRef.parse(cell), directory)
    except ValueError as exc:
        raise t.fail("password", f"is not usable: {exc}") from None
    return AdminLogin(user=user, password=password,
                      mode=_choice(t, "mode", ADMIN_MODES, "sasl"),
                      separator=_string(t, "separator", "*"))


def _folders(t: _Table) -> FolderRules:
    t.allow("include", "exclude", "rename")
    include = _string_list(t, "include", ("*",))
    if not include:
        raise t.fail("include", "is empty, so no folder would be copied; use [\"*\"] for all")
    exclude = _string_list(t, "exclude", ())
    renames: list[RenameRule] = []
    items = t.get("rename", [])
    if not isinstance(items, list):
        raise t.fail("rename", f"must be a list of tables ([[folders.rename]]), "
                               f"got {_kind(items)}")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise t.fail("rename", f"entry {index + 1} must be a table with pattern and "
                                   f"replacement, got {_kind(item)}")
        rule = t.child(item, ("rename", index))
        rule.allow("pattern", "replacement")
        renames.append(_rename_rule(rule))
    return FolderRules(include=include, exclude=exclude, renames=tuple(renames))


def _rename_rule(t: _Table) -> RenameRule:
    pattern = _string(t, "pattern")
    replacement = _string(t, "replacement")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise t.fail("pattern", f"is not a valid regular expression: {exc}") from None
    # Check the replacement against a pattern with the same groups that matches anything, so
    # a bad \3 or \g<name> fails now rather than in the middle of a migration.
    names = {index: name for name, index in compiled.groupindex.items()}
    twin = "".join(f"(?P<{names[i]}>)" if i in names else "()"
                   for i in range(1, compiled.groups + 1))
    try:
        re.compile(twin).match("").expand(replacement)  # type: ignore[union-attr]
    except (re.error, IndexError) as exc:
        raise t.fail("replacement", f"does not fit the pattern: {exc}") from None
    return RenameRule(pattern=pattern, replacement=replacement)


def _options(t: _Table) -> PassOptions:
    t.allow("max_message_size", "deletion_ceiling", "deletion_floor", "batch_messages",
            "batch_bytes", "mailbox_parallelism", "folder_parallelism", "gmail_labels")
    ceiling = _number(t, "deletion_ceiling", 0.10)
    if ceiling > 1:
        raise t.fail("deletion_ceiling", f"is a fraction of a folder: more than 0 and at most "
                                         f"1 (0.10 = 10%), got {ceiling}")
    return PassOptions(
        max_message_size=_size(t, "max_message_size", None),
        deletion_ceiling=ceiling,
        deletion_floor=_integer(t, "deletion_floor", 10, minimum=0),
        batch_messages=_integer(t, "batch_messages", 200, minimum=1),
        batch_bytes=_size(t, "batch_bytes", 8 * _MiB) or 8 * _MiB,
        mailbox_parallelism=_integer(t, "mailbox_parallelism", 4, minimum=1),
        folder_parallelism=_integer(t, "folder_parallelism", 4, minimum=1),
        gmail_labels=_choice(t, "gmail_labels", ("folders", "labels"), "folders"),
    )


def _distributed(t: _Table) -> DistributedSettings:
    t.allow("split_mailbox_above", "split_parts")
    above: int | None = DistributedSettings.split_mailbox_above
    if t.data.get("split_mailbox_above") == "off":
        above = None
    else:
        above = _size(t, "split_mailbox_above", above)
    return DistributedSettings(split_mailbox_above=above,
                               split_parts=_integer(t, "split_parts", 8, minimum=2))


def _dns(t: _Table) -> DnsSettings:
    t.allow("provider", "m365_mx", "mx", "spf_includes", "resolvers", "ns_addresses",
            "filters", "timeout")
    tenant = t.table("m365_mx")
    m365 = tuple((_domain(t, d), _string(tenant, d)) for d in tenant.data)
    lists = {k: _string_list(t, k, ()) for k in ("resolvers", "ns_addresses", "filters")}
    if any(lists.values()):  # their parsers only when there are entries (start-up time)
        from mxshift.dns.addresses import Address, parse_mapping  # pure, no dnspython
        from mxshift.dns.filters import parse_filter

        for key, parse in (("resolvers", Address.parse), ("ns_addresses", parse_mapping),
                           ("filters", parse_filter)):
            for item in lists[key]:
                try:
                    parse(item)
                except ValueError as exc:
                    raise t.fail(key, f"entry {exc}") from None
    return DnsSettings(provider=_choice(t, "provider", ("m365", "google", "custom"), None)
                       if "provider" in t.data else None,
                       m365_mx=m365, mx=_string_list(t, "mx", ()),
                       spf_includes=_string_list(t, "spf_includes", ()),
                       timeout=_number(t, "timeout", 2.0), **lists)


NOTIFY_EVENTS = ("pass_failed", "verify_failed", "complete")


def _notify(t: _Table, directory: Path) -> NotifySettings:
    t.allow("smtp_host", "smtp_port", "smtp_security", "smtp_user", "smtp_password", "from",
            "to", "webhook", "events")
    password = _string(t, "smtp_password", None, secret=True)
    events = _string_list(t, "events", NOTIFY_EVENTS)
    for e in events:
        if e not in NOTIFY_EVENTS:
            raise t.fail("events", f"unknown event {e!r} (known: {', '.join(NOTIFY_EVENTS)})")
    to = _string_list(t, "to", ())
    host = _string(t, "smtp_host", None)
    if host and not to:
        raise t.fail("to", "smtp_host is set but nobody to send to")
    return NotifySettings(
        smtp_host=host, smtp_port=_integer(t, "smtp_port", 587, minimum=1, maximum=65535),
        smtp_security=_choice(t, "smtp_security", ("starttls", "tls", "none"), "starttls"),
        smtp_user=_string(t, "smtp_user", None),
        smtp_password=anchor_ref(SecretRef.parse(password), directory) if password else None,
        sender=_string(t, "from", "mxshift@localhost"), to=to,
        webhook=_string(t, "webhook", None), events=events)


def _domain(t: _Table, domain: str) -> str:
    domain = domain.strip().lower()
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", domain) or ".." in domain:
        raise t.fail("domains", f"entry {domain!r} is not a domain name like acme.example "
                                f"(no @, no spaces)")
    return domain


def _anchor(path: Path, directory: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else directory / path


def anchor_ref(ref: SecretRef, directory: Path) -> SecretRef:
    """Make ``file:`` references independent of the cwd the tool is later run from.

    Relative paths are taken from ``directory``: the project directory here, the CSV's
    directory in :mod:`mxshift.mailbox_csv`."""
    if ref.kind != "file":
        return ref
    return SecretRef("file", str(_anchor(Path(ref.value), directory)))
