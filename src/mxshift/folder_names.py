"""Folder-name rules of a destination: names a hosted service refuses, made safe before
we ask it to create them.

Why: a CREATE the destination refuses leaves that folder's mail uncopied until an admin
writes a rename rule (engine/mailbox_pass.py ``_refused_folder``). The well-known cases
are cheaper to fix in the plan: the folder is renamed once, the reason is reported as a
folder note, and every re-run lands in the same folder because the folder pair keeps the
name it was created with. Pure: :func:`safe_path` is called by
:func:`mxshift.mapping.map_folders` on every destination path it has to create (paths
already on the destination are reused as they are: the server accepted them).

What the rules are based on (public documentation; no service can be asked here):

- Microsoft 365 / Exchange Online. Microsoft documents that Outlook Web Access refuses
  folder names with ``[ ] / \\ & ~ ? * | < > " ; : +`` and periods (KB 256385, "XWEB:
  Creating Folders with Special Characters in the Name Is Not Allowed"; "Special
  Characters in Folder Names", Exchange Server 2007 SDK), while the store itself accepts
  them when created programmatically. We replace only those that also break Windows-side
  tools (``\\ * ? < > | "``), not ``& [ ] : ; + ~``, which are common in real folder names
  and which IMAP clients create on Exchange Online every day. Leading and trailing
  spaces, and a trailing period, are refused or silently changed by Outlook and
  SharePoint-side tools (Outlook IMAP sync guidance; Colligo's "File and Folder Name
  Restrictions" for M365): trimmed. Control characters are refused by every server we
  know. 255 characters per name component is the Exchange display-name limit we assume.
  Exchange's own non-mail folders (Calendar, Contacts, ...) are ``reserved_names`` in
  :mod:`mxshift.providers` and already renamed by rename rules on the source path.
- Gmail / Google Workspace. "System label names are reserved; no USER label can be
  created with the same name as any SYSTEM label" (Gmail API guide "Manage labels":
  INBOX, SPAM, TRASH, UNREAD, STARRED, IMPORTANT, SENT, DRAFT, CATEGORY_*), plus the
  names the web interface shows for them ("Sent Mail", "All Mail", "Chats", "Scheduled",
  "Snoozed") and the "[Gmail]"/"[Google Mail]" parent that holds the system folders:
  a top-level folder of that name gets the profile's suffix ("Spam (mail)"). Migration
  services document that labels with ``\\``, ``*``, a backtick, leading or trailing
  spaces, or double spaces fail to sync over IMAP (cloudHQ, "Save emails: limitations");
  ``"/"`` is Gmail's hierarchy separator and is handled by the mapping already.

Only the last resort is a rename: characters are replaced by ``_``, spaces and periods
trimmed, a reserved top-level name suffixed. Two source folders that become the same
name are told apart by the mapping's collision rule (" (2)", " (3)", in source-name
order, so the same on every run): nothing is merged silently.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class NameRules:
    """What one destination service accepts as a folder name (one path component)."""

    service: str                          # named in the reasons ("Microsoft 365")
    refused_chars: str = ""               # replaced by ``replacement``
    replacement: str = "_"
    strip_chars: str = ""                 # not allowed at the start or end: trimmed
    no_trailing: str = ""                 # not allowed at the end only: trimmed
    collapse_spaces: bool = False         # "a  b" -> "a b"
    max_component: int | None = None      # characters per component; longer is cut
    reserved_top: tuple[str, ...] = ()    # top-level names kept by the service
    reserved_suffix: str = " (mail)"


MICROSOFT365 = NameRules(
    service="Microsoft 365", refused_chars='\\*?<>|"', strip_chars=" ", no_trailing=".",
    max_component=255)
GMAIL = NameRules(
    service="Gmail", refused_chars="\\*`", strip_chars=" ", collapse_spaces=True,
    reserved_top=("Inbox", "Sent", "Sent Mail", "Draft", "Drafts", "Spam", "Trash", "Bin",
                  "Starred", "Important", "Unread", "Chats", "All Mail", "Scheduled",
                  "Snoozed", "Outbox", "[Gmail]", "[Google Mail]"))

RULES: dict[str, NameRules] = {"microsoft365": MICROSOFT365, "gmail": GMAIL}


def rules_for(provider: str | None) -> NameRules | None:
    """The name rules of a destination provider; None where we know of none."""
    return RULES.get(provider) if provider else None


def safe_component(rules: NameRules, name: str, *, top: bool) -> tuple[str, list[str]]:
    """One name component made acceptable to the service, and why it changed (empty when
    it did not). ``top``: the component is a top-level folder (reserved names apply)."""
    reasons: list[str] = []
    out = name
    bad = sorted({c for c in out if c in rules.refused_chars
                  or unicodedata.category(c) == "Cc"})
    if bad:
        out = "".join(rules.replacement if c in bad else c for c in out)
        shown = " ".join(repr(c) for c in bad)
        reasons.append(f"{rules.service} refuses {shown} in folder names")
    if rules.collapse_spaces and "  " in out:
        out = " ".join(part for part in out.split(" ") if part) if out.strip() else out
        reasons.append(f"{rules.service} does not keep double spaces")
    if rules.strip_chars and out != out.strip(rules.strip_chars):
        out = out.strip(rules.strip_chars)
        reasons.append(f"{rules.service} refuses a name starting or ending with "
                       f"{' or '.join(repr(c) for c in rules.strip_chars)}")
    if rules.no_trailing and out != out.rstrip(rules.no_trailing):
        out = out.rstrip(rules.no_trailing)
        reasons.append(f"{rules.service} refuses a name ending with "
                       f"{' or '.join(repr(c) for c in rules.no_trailing)}")
    if not out:
        out = rules.replacement
        reasons.append("nothing was left of the name")
    if rules.max_component is not None and len(out) > rules.max_component:
        out = out[:rules.max_component].rstrip(rules.strip_chars + rules.no_trailing) \
            or rules.replacement
        reasons.append(f"{rules.service} takes at most {rules.max_component} characters "
                       f"per folder name")
    if top and out.casefold() in {r.casefold() for r in rules.reserved_top}:
        reasons.append(f"{rules.service} keeps the top-level name {out!r} for itself")
        out += rules.reserved_suffix
    return out, reasons


def safe_path(rules: NameRules, path: tuple[str, ...],
              keep: int = 0) -> tuple[tuple[str, ...], str | None]:
    """``path`` (a destination logical path) with every component from index ``keep`` on
    made acceptable, and one sentence saying what changed and why (None: unchanged).

    ``keep``: how many leading components exist already (a parent the server accepted, or
    one this plan already made safe): they are left alone.
    """
    out = list(path)
    why: list[str] = []
    for i in range(keep, len(path)):
        out[i], reasons = safe_component(rules, path[i], top=i == 0)
        why += [r for r in reasons if r not in why]
    if tuple(out) == path:
        return path, None
    return tuple(out), (f"'{'/'.join(path)}' renamed to '{'/'.join(out)}': "
                        + "; ".join(why))
