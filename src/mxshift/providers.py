"""Provider profiles: what an admin would otherwise have to know about a hosted service.

Why: ``provider = "microsoft365"`` on an endpoint should be enough to get the host, port
and TLS right, a connection count the service tolerates, its message size limit (larger
messages are skipped and reported with that reason instead of failing at APPEND), the
login mechanism it wants, and which of its folders are views rather than folders. Every
value is a default: a key written in mxshift.toml wins. Pure data and pure functions.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass

from mxshift.errors import ConfigError

_MiB = 1024 * 1024


@dataclass(frozen=True)
class Profile:
    name: str
    host: str | None                  # None: the admin must name it (self-hosted)
    port: int = 993
    security: str = "tls"
    max_connections: int = 10         # per endpoint, shared by all mailboxes in flight
    max_message_size: int | None = None  # larger messages are skipped, with the reason
    size_reason: str = ""
    size_phrase: str = ""            # "the 35 MB <size_phrase>": who refuses larger ones
    # LIST flags of a *source*'s views (Gmail's \All, \Important, \Flagged): excluded
    # like virtual_folders, whatever language the folder names are in
    virtual_flags: tuple[str, ...] = ()
    auth: str = "password"            # "xoauth2" where the service wants OAuth2
    token_provider: str | None = None  # the usual [x.oauth] token_provider
    # Folders that are views of other folders on a *source* (copying them would copy every
    # message twice): logical paths, "/"-joined; they join [folders].exclude (escaped).
    virtual_folders: tuple[str, ...] = ()
    # Special-use folder names on this service, by role (for reports and the templates).
    special_use: tuple[tuple[str, str], ...] = ()
    # Top-level names the service keeps for itself on a *destination*: a mail folder of that
    # name from the source would land in (or be refused as) the service's own folder.
    # (Refused characters, trimming, length and Gmail's system-label names: the
    # destination's rules in mxshift.folder_names, applied to every path to be created.)
    reserved_names: tuple[str, ...] = ()
    reserved_suffix: str = " (mail)"


PROFILES: dict[str, Profile] = {
    "microsoft365": Profile(
        name="microsoft365", host="outlook.office365.com", max_connections=8,
        max_message_size=35 * _MiB,
        size_reason="Microsoft 365 accepts messages up to 35 MB over IMAP",
        size_phrase="Microsoft 365 accepts over IMAP",
        auth="xoauth2", token_provider="microsoft",
        special_use=(("sent", "Sent Items"), ("trash", "Deleted Items"),
                     ("junk", "Junk Email"), ("drafts", "Drafts"), ("archive", "Archive")),
        # Exchange's own non-mail folders: hidden from IMAP, yet their names are taken
        reserved_names=("Calendar", "Contacts", "Tasks", "Notes", "Journal", "Outbox",
                        "Sync Issues", "Conversation History", "RSS Feeds"),
    ),
    "gmail": Profile(
        name="gmail", host="imap.gmail.com", max_connections=15,
        max_message_size=25 * _MiB,
        size_reason="Gmail accepts messages up to 25 MB",
        size_phrase="Gmail accepts",
        virtual_flags=("\\All", "\\Important", "\\Flagged"),
        auth="xoauth2", token_provider="google",
        virtual_folders=("[Gmail]/All Mail", "[Gmail]/Important", "[Gmail]/Starred",
                         "[Google Mail]/All Mail", "[Google Mail]/Important",
                         "[Google Mail]/Starred", "[Google Mail]/Alle Nachrichten",
                         "[Google Mail]/Wichtig", "[Google Mail]/Markiert"),
        special_use=(("sent", "[Gmail]/Sent Mail"), ("trash", "[Gmail]/Trash"),
                     ("junk", "[Gmail]/Spam"), ("drafts", "[Gmail]/Drafts"),
                     ("all", "[Gmail]/All Mail"), ("flagged", "[Gmail]/Starred")),
    ),
    "dovecot": Profile(name="dovecot", host=None),
    "generic": Profile(name="generic", host=None),
}
PROVIDER_NAMES: tuple[str, ...] = tuple(PROFILES)


def profile(name: str | None) -> Profile | None:
    """The profile called ``name``; None for no provider; ConfigError for an unknown one."""
    if name is None:
        return None
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}; known: "
                          f"{', '.join(PROVIDER_NAMES)}") from None


def source_exclusions(p: Profile | None) -> tuple[str, ...]:
    """Exclude patterns a source on this provider adds to [folders].exclude: Gmail's "All
    Mail", "Important" and "Starred" hold the messages of the label folders again; copying
    them as folders would put every message on the destination two or three times."""
    # "[Gmail]" would be a character class to fnmatch: escape the names into patterns
    return tuple(glob.escape(name) for name in p.virtual_folders) if p is not None else ()


def destination_renames(p: Profile | None) -> tuple[tuple[str, str], ...]:
    """(pattern, replacement) rename rules for a destination on this provider: a top-level
    source folder named like one of its reserved folders ("Calendar" on Microsoft 365) gets
    ``reserved_suffix`` ("Calendar (mail)"); its sub-folders follow it. They come after the
    admin's own [[folders.rename]] rules, which win."""
    if p is None or not p.reserved_names:
        return ()
    names = "|".join(re.escape(n) for n in p.reserved_names)
    return ((f"(?i)({names})", r"\1" + p.reserved_suffix),)


def size_limit_reason(p: Profile | None, size: int) -> str | None:
    """Why a message of ``size`` bytes cannot go to this provider; None when it can."""
    if p is None or p.max_message_size is None or size <= p.max_message_size:
        return None
    return f"{p.size_reason} ({size} bytes > {p.max_message_size})"


def oversize_reason(p: Profile | None, size: int, limit: int) -> str:
    """The skip reason of a message of ``size`` bytes over ``limit``: names the provider
    when the limit is its profile's ("larger than the 35 MB Microsoft 365 accepts over
    IMAP"), so the admin knows no setting of ours will let it through; otherwise the
    limit came from [options] max_message_size or the server's APPENDLIMIT."""
    if p is not None and p.max_message_size == limit and p.size_phrase:
        return (f"message of {size} bytes is larger than the {limit // _MiB} MB "
                f"{p.size_phrase}")
    return (f"message of {size} bytes exceeds the limit of {limit} bytes "
            "(max_message_size or the destination's APPENDLIMIT)")


def source_flag_exclusions(p: Profile | None) -> tuple[str, ...]:
    """LIST flags whose folders a source on this provider does not copy (see
    :func:`source_exclusions`; these hold whatever the display language)."""
    return p.virtual_flags if p is not None else ()
