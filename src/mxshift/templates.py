"""Starter files written by ``mxshift init``.

Why commented templates instead of documentation: the admin edits these files anyway, so every
optional setting sits where it is used, switched off, with one or two sentences saying when to
turn it on. The active part is the smallest config that works, and tests load it to keep the
template and the parser in step.
"""

from __future__ import annotations

from pathlib import Path

from mxshift.config import MAILBOX_FILE, PROJECT_FILE
from mxshift.errors import ConfigError

PROJECT_TEMPLATE = """\
# mxshift project file. Lines starting with # are comments; remove the # to use a setting.
# Passwords can be written as env:VARIABLE (read from the environment), file:PATH (first line of
# a file; relative paths are relative to this directory) or as the password itself.

# [project]
# name = "acme-to-m365"            # shown in reports; defaults to this directory's name
# domains = ["acme.example"]       # the organisation's mail domains, for reports

# ---------------------------------------------------------------------------------------------
# The server mail is copied FROM.
[source]
host = "127.0.0.1"
port = 11143
security = "none"        # tls | starttls | none

# port: if left out, 993 for security = "tls" and 143 otherwise.
# security: "tls" connects with TLS from the start (usually port 993), "starttls" upgrades a
# plain connection (usually port 143), "none" sends passwords unencrypted: test setups only.

# ca_file = "/etc/mxshift/old-server-ca.pem"  # trust this CA as well (self-signed / in-house CA)
# Turns certificate checking OFF. Must repeat the host above exactly, so a copied project
# file does not quietly carry it over to another server. Prefer ca_file.
# insecure_skip_verify_host = "127.0.0.1"
# max_connections = 10             # connections to this server at once, over all mailboxes
# disable_capabilities = ["QRESYNC"]  # ignore features the server announces but gets wrong
# timeout = 60                     # seconds to wait for the server before giving up

# An admin (master) login that can open every mailbox. With it, passwords for this side may be
# left empty in mailboxes.csv.
# [source.admin]
# user = "admin"
# password = "env:SOURCE_ADMIN_PW"
# mode = "sasl"                    # sasl: AUTHENTICATE PLAIN as the admin on behalf of the user
#                                  # dovecot: log in as "user*admin" (Dovecot master users)
# separator = "*"                  # the * in "user*admin", for mode = "dovecot"

# ---------------------------------------------------------------------------------------------
# The server mail is copied TO. Takes the same settings as [source], including an admin login
# ([destination.admin]).
[destination]
host = "127.0.0.1"
port = 12143
security = "none"        # tls | starttls | none

# Hosted services (Microsoft 365, Google Workspace): a provider profile sets host, port, TLS,
# connections, the size limit (Microsoft: 35 MB; larger messages are skipped and reported)
# and OAuth2 login; every key written here wins over it. Mailbox passwords are then unused.
# To use one, set provider to "microsoft365", "gmail", "dovecot" or "generic" (Microsoft 365
# also renames a source folder called Calendar, Contacts, Tasks... to "Calendar (mail)").
# auth = "xoauth2"                 # password | xoauth2 | oauthbearer
# Microsoft 365 app-only (MSAL client credentials): the Entra app needs the application
# permission IMAP.AccessAsApp (admin-consented) and an Exchange service principal with access
# to the mailboxes.
# [destination.oauth]
# token_provider = "microsoft"     # microsoft | google | command | static
# tenant_id = "contoso.onmicrosoft.com"
# client_id = "00000000-0000-0000-0000-000000000000"
# client_secret = "env:M365_CLIENT_SECRET"
# refresh_margin = 300             # seconds before expiry a token is renewed
# Google Workspace instead: token_provider "google" with service_account set to
# "file:service-account.json" (domain-wide delegation for https://mail.google.com/).
# Anything else: token_provider "command" with command set to ["/usr/local/bin/get-token"]
# (it gets the mailbox user as last argument and prints a token; an optional second line
# "expires_in=SECONDS" says how long it lasts).
#
# When the server pushes back ("Request is throttled. Suggested Backoff Time: ...", BYE,
# [UNAVAILABLE]) mxshift waits as told, reconnects and goes on, up to max_total_wait per pass.
# [destination.throttle]
# max_total_wait = 1800            # seconds of back-off a pass may spend, then it fails
# messages_per_second = 10         # rate limits for this server (all its connections)
# bytes_per_second = "10MB"
# bytes_per_day = "500MB"          # e.g. Gmail's daily IMAP upload allowance

# ---------------------------------------------------------------------------------------------
# Which folders to copy. Folder paths are written with "/" between levels (Archive/2019) whatever
# the server uses. Patterns use * and ?; a * also matches across levels.
# [folders]
# include = ["*"]                  # default: every folder
# exclude = ["Calendar", "Contacts*"]   # wins over include

# Rename folders on the way: pattern is a regular expression that must match the whole path,
# replacement may use \\1 for the first (...) group. Inside "..." a backslash is written twice,
# as below. The first matching rule is used; repeat the block for more rules.
# [[folders.rename]]
# pattern = "Archive/(\\\\d{4})"
# replacement = "Old/\\\\1"

# ---------------------------------------------------------------------------------------------
# How a pass behaves. Sizes are bytes or text like "512KB", "35MB", "1GB" (1 KB = 1024 bytes).
# [options]
# max_message_size = "35MB"        # skip (and report) larger messages; default: no limit
# Safety brake: if one pass would delete more than this fraction of a folder on the
# destination, it stops and asks you to rerun with --allow-mass-delete. 0.10 = 10%.
# deletion_ceiling = 0.10
# deletion_floor = 10              # this many deletions are always allowed (small folders)
# batch_messages = 200             # messages sent to the destination per batch
# batch_bytes = "8MB"              # ... or fewer, if they add up to this size
# mailbox_parallelism = 4          # mailboxes migrated at the same time
# A message found in several source folders (a Gmail source shows one message in each of its
# labels' folders), going to a Gmail destination: "folders" appends one copy per folder;
# "labels" appends it once and adds the other folders as Gmail labels (X-GM-LABELS).
# gmail_labels = "folders"

# ---------------------------------------------------------------------------------------------
# The timeline `mxshift run` follows. Times need an offset (+01:00 or Z).
# [schedule]
# prestage_at = "2026-12-01T20:00:00+01:00"  # first full copy; default: when `run` starts
# delta_interval = "24h"           # catch-up passes until the cutover
# cutover_at = "2026-12-05T18:00:00+01:00"   # final sync, only once DNS is ready
# cutover_retry = "15m"            # retry a cutover refused by the DNS check this often
# sweep_interval = "60m"           # after the cutover: fetch mail still reaching the old server
# sweep_window = "48h"             # ... for this long (`mxshift schedule --end-sweeps` ends it)

# ---------------------------------------------------------------------------------------------
# Only with Celery workers (MXSHIFT_BROKER_URL): a pass with more than this much left to copy
# is split into folder-pair tasks that several workers run at once.
# [distributed]
# split_mailbox_above = "20GB"     # "off": never split
# split_parts = 8                  # at most this many folder-pair tasks per mailbox
"""

MAILBOX_TEMPLATE = """\
source_user,source_password,destination_user,destination_password
# One mailbox per line; lines starting with # are ignored. Passwords: env:VARIABLE, file:PATH or
# the password itself; leave empty for a side that has an admin login in mxshift.toml.
# alice@acme.example,env:ALICE_OLD_PW,alice@acme.example,env:ALICE_NEW_PW
"""


def write_templates(directory: Path, *, force: bool = False) -> list[Path]:
    """Write ``mxshift.toml`` and ``mailboxes.csv`` into ``directory`` (created if needed).

    Refuses before writing anything if either file exists, unless ``force``: a half-initialised
    project is worse than none, and an existing mailbox list may be hours of work.
    """
    directory = Path(directory)
    files = [(directory / PROJECT_FILE, PROJECT_TEMPLATE),
             (directory / MAILBOX_FILE, MAILBOX_TEMPLATE)]
    if not force:
        for path, _ in files:
            if path.exists():
                raise ConfigError("already exists; not overwriting it (use --force to replace "
                                  "it with the template)", path=str(path))
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files:
        path.write_text(text, encoding="utf-8", newline="\n")
    return [path for path, _ in files]
