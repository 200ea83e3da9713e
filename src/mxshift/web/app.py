"""The dashboard's ASGI app: pages, their ``.json`` twins, and the actions.

Why FastAPI: the JSON twins get an OpenAPI description (``/openapi.json``) for free while
the HTML pages stay plain Jinja templates; no front-end build step. Conventions:

- ``GET /x`` renders a page, ``GET /x.json`` the same dict as JSON (``views`` builds it);
- reading needs a session (admin login or the read-only token) or a Bearer credential;
- ``POST`` actions need the admin role, and a CSRF token when the caller uses a cookie;
  a browser is redirected back (303) with a notice, an API client gets JSON (202/200);
- long actions return at once and run as background jobs (:mod:`mxshift.web.jobs`).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from imapclient import imap_utf7

from mxshift.errors import MxshiftError
from mxshift.project import OpenProject
from mxshift.web import actions, views
from mxshift.web.auth import Authenticator, Role, Session, Sessions, csrf_ok
from mxshift.web.jobs import Jobs
from mxshift.web.reads import read_only

_HERE = Path(__file__).parent
COOKIE = "mxshift_session"


@dataclass
class Caller:
    role: Role
    session: Session | None   # None for a Bearer caller (no cookie, no CSRF needed)
    sid: str | None = None

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def human_size(n: float | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def short_time(iso: str | None) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, _ = divmod(rem, 60)
    return f"{d}d {h}h" if d else f"{h}h {m}m" if h else f"{m}m {s % 60}s"


def folder_name(server_name: str | None) -> str:
    """A destination folder as the user will see it: IMAP's modified UTF-7 decoded."""
    if not server_name:
        return ""
    try:
        return imap_utf7.decode(server_name.encode("ascii"))
    except (UnicodeError, ValueError):
        return server_name


def create_app(proj: OpenProject, *, jobs: Jobs | None = None) -> FastAPI:
    """The app over an open project. ``proj`` is used for writes; pages read through a
    separate read-only engine."""
    ro = read_only(proj)
    auth = Authenticator(ro.db)
    sessions = Sessions()
    jobs = jobs or Jobs()
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.filters.update(size=human_size, when=short_time, duration=duration,
                                 folder=folder_name)

    app = FastAPI(title="mxshift dashboard", version="1",
                  description="The JSON twins of the dashboard's pages, and its actions. "
                              "Authenticate with `Authorization: Bearer <admin password or "
                              "read-only token>`.",
                  docs_url=None, redoc_url=None, lifespan=_lifespan)
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
    app.state.proj, app.state.ro, app.state.jobs, app.state.sessions = proj, ro, jobs, sessions

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        """No framing (the action buttons cannot be clickjacked), no referrer (the
        read-only link carries a token), scripts only from /static."""
        response: Response = await call_next(request)
        response.headers.setdefault("x-frame-options", "DENY")
        response.headers.setdefault("referrer-policy", "no-referrer")
        response.headers.setdefault("x-content-type-options", "nosniff")
        response.headers.setdefault("content-security-policy",
                                    "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                    "frame-ancestors 'none'; form-action 'self'")
        if request.url.path != "/login" and not request.url.path.startswith("/static/"):
            response.headers.setdefault("cache-control", "no-store")
        return response

    # -- who is asking ------------------------------------------------------------------
    def caller(request: Request) -> Caller | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            role = auth.role_for(header[7:].strip())
            return Caller(role, None) if role else None
        sid = request.cookies.get(COOKIE)
        sess = sessions.get(sid)
        return Caller(sess.role, sess, sid) if sess else None

    def reader(request: Request) -> Caller:
        who = caller(request)
        if who is None:
            raise Denied(401, "log in or use the read-only link")
        return who

    async def writer(request: Request) -> tuple[Caller, dict[str, Any]]:
        who = reader(request)
        form = dict(await request.form()) if _is_form(request) else {}
        if not who.admin:
            raise Denied(403, "read-only access: log in as admin to act")
        if who.session is not None:
            token = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
            if not csrf_ok(who.session, token):
                raise Denied(403, "the form has expired or did not come from this "
                                  "dashboard (CSRF check failed): reload the page")
        return who, form

    @app.exception_handler(Denied)
    async def _denied(request: Request, exc: Denied) -> Response:
        if wants_json(request):
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        if exc.status == 401:
            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        return page(request, "error.html", {"message": str(exc)}, caller(request),
                    status=exc.status)

    def wants_json(request: Request) -> bool:
        return (request.url.path.endswith(".json")
                or "application/json" in request.headers.get("accept", "")
                or request.headers.get("authorization", "").lower().startswith("bearer "))

    def page(request: Request, name: str, data: dict[str, Any], who: Caller | None, *,
             status: int = 200, json_url: str | None = None) -> HTMLResponse:
        notices = who.session.notices if who and who.session else []
        shown, notices[:] = list(notices), []
        return templates.TemplateResponse(request, name, {
            "d": data, "who": who, "csrf": who.session.csrf if who and who.session else "",
            "notices": shown, "json_url": json_url, "jobs": jobs.recent(8) if who else [],
            "project_name": proj.config.name}, status_code=status)

    def done(request: Request, who: Caller, message: str, back: str,
             payload: dict[str, Any], status: int = 202) -> Response:
        if who.session is None or wants_json(request):
            return JSONResponse(payload, status_code=status)
        who.session.notices.append(message)
        return RedirectResponse(back, status_code=303)

    # -- login ---------------------------------------------------------------------------
    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return page(request, "login.html", {"next": _safe_next(next), "error": None},
                    caller(request))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        role = auth.role_for(str(form.get("secret") or ""))
        nxt = _safe_next(str(form.get("next") or "/"))
        if role is None:
            await asyncio.sleep(1)  # slows guessing; scrypt already costs ~50 ms a try
            return page(request, "login.html", {"next": nxt, "error": "wrong password or "
                        "token"}, None, status=401)
        return _with_session(nxt, role)

    def _with_session(target: str, role: Role) -> Response:
        sid, _ = sessions.create(role)
        resp = RedirectResponse(target, status_code=303)
        resp.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")
        return resp

    @app.get("/view", include_in_schema=False)
    def view_link(token: str = "") -> Response:
        """The customer's read-only link: ``/view?token=...`` logs in as a viewer."""
        role = auth.role_for(token)
        if role != "viewer":
            raise Denied(403, "this read-only link is not valid (any more)")
        return _with_session("/", "viewer")

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        sessions.drop(request.cookies.get(COOKIE))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    # -- pages and their JSON twins --------------------------------------------------------
    @app.get("/index.json", summary="Project overview: phase, timeline, DNS, totals, "
             "strays, verification and what blocks completion")
    def overview_json(request: Request) -> dict[str, Any]:
        """`project` {id, name, phase}; `timeline` (null without a schedule) {phase,
        prestage_at, cutover_at, cutover_done_at, delta_interval, sweep_interval and
        sweep_left in seconds, sweep_until, slots [{kind, due_at, ran_at, status}],
        next_due}; `dns` [{domain, verdict, checked_at, checks [{record, verdict, found,
        expected, message}], propagation}]; `totals` {mailboxes, by_state,
        messages_on_destination, messages_copied, bytes_copied, messages_skipped,
        running_passes, messages_per_second, bytes_per_second}; `strays` [{hour, count}];
        `verification` {complete, by_verdict, blockers [str]}; `jobs`."""
        reader(request)
        return {**views.overview(ro), "jobs": [j.as_json() for j in jobs.recent(10)]}

    @app.get("/", include_in_schema=False)
    def overview_page(request: Request) -> HTMLResponse:
        who = reader(request)
        return page(request, "overview.html", views.overview(ro), who, json_url="/index.json")

    @app.get("/mailboxes.json", summary="Mailboxes with progress (live while passes run)")
    def mailboxes_json(request: Request, state: str | None = None, sort: str | None = None,
                       desc: bool = False) -> dict[str, Any]:
        """`mailboxes` [{id, source_user, destination_user, status, messages_on_destination,
        messages_skipped, messages_copied, bytes_copied, messages_failed, last_pass_at,
        last_pass {kind, status, errors}, errors, last_error, verification (null, verified,
        failed, error, outdated), running (null or the running pass: {kind, copied,
        bytes_copied, messages_per_second, bytes_per_second, started_at, ...})}],
        `totals` (of all mailboxes), `states`, `state`, `sort`, `desc`. Sort keys:
        source_user, destination_user, status, messages_on_destination, bytes_copied,
        messages_skipped, errors, last_pass_at, verification."""
        reader(request)
        return views.mailboxes(ro, state=state or None, sort=sort, descending=desc)

    @app.get("/mailboxes", include_in_schema=False)
    def mailboxes_page(request: Request, state: str | None = None, sort: str | None = None,
                       desc: bool = False) -> HTMLResponse:
        who = reader(request)
        data = views.mailboxes(ro, state=state or None, sort=sort, descending=desc)
        return page(request, "mailboxes.html", data, who,
                    json_url="/mailboxes.json" + (f"?{request.url.query}"
                                                  if request.url.query else ""))

    @app.get("/mailboxes/{mailbox_id:int}.json",
             summary="One mailbox: folders, passes, findings, verification")
    def mailbox_json(request: Request, mailbox_id: int) -> dict[str, Any]:
        """The mailbox's fields, `folders` [{source, destination, role, sync_mode,
        source_messages, on_destination, skipped, last_synced_at, present}], `passes` (newest
        first, 50), `pass_findings` (skipped items, repairs... with reasons), `verification`
        (the latest, with `findings` [{id, kind, folder, subject, reason, explained,
        accepted, open}]), `gate` {verified, open [str]}, `strays`."""
        reader(request)
        data = views.mailbox(ro, mailbox_id)
        if data is None:
            raise Denied(404, f"no mailbox {mailbox_id}")
        return data

    @app.get("/mailboxes/{mailbox_id:int}", include_in_schema=False)
    def mailbox_page(request: Request, mailbox_id: int) -> HTMLResponse:
        who = reader(request)
        data = views.mailbox(ro, mailbox_id)
        if data is None:
            raise Denied(404, f"no mailbox {mailbox_id}")
        return page(request, "mailbox.html", data, who, json_url=f"/mailboxes/{mailbox_id}.json")

    @app.get("/cutover.json", summary="The cutover: DNS gate and timeline")
    def cutover_json(request: Request) -> dict[str, Any]:
        reader(request)
        return views.cutover_state(ro)

    @app.get("/cutover", include_in_schema=False)
    def cutover_page(request: Request) -> HTMLResponse:
        who = reader(request)
        return page(request, "cutover.html", views.cutover_state(ro), who,
                    json_url="/cutover.json")

    @app.get("/reports.json", summary="Where to download the reports")
    def reports_json(request: Request) -> dict[str, Any]:
        reader(request)
        return {"reports": {f: f"/reports/report.{f}" for f in ("html", "csv", "json")}}

    @app.get("/reports", include_in_schema=False)
    def reports_page(request: Request) -> HTMLResponse:
        who = reader(request)
        return page(request, "reports.html", reports_json(request), who,
                    json_url="/reports.json")

    @app.get("/reports/report.{fmt}", summary="Download the report (html, csv or json)")
    def report_file(request: Request, fmt: str) -> Response:
        reader(request)
        if fmt not in ("html", "csv", "json"):
            raise Denied(404, f"no report format {fmt!r}")
        from mxshift.report import render

        media = {"html": "text/html", "csv": "text/csv", "json": "application/json"}[fmt]
        return Response(render(ro, fmt), media_type=f"{media}; charset=utf-8", headers={
            "content-disposition": f'attachment; filename="mxshift-report.{fmt}"'})

    @app.get("/jobs.json", summary="Recent actions started from the dashboard")
    def jobs_json(request: Request) -> dict[str, Any]:
        reader(request)
        return {"jobs": [j.as_json() for j in jobs.recent(50)]}

    # -- actions ------------------------------------------------------------------------
    def selected_users(form: dict[str, Any], multi: list[str]) -> list[str] | None:
        ids = {int(x) for x in multi if str(x).isdigit()}
        if not ids:
            return None  # nothing ticked: all mailboxes
        users = [m.source_user for m in ro.mailboxes() if m.id in ids]
        if not users:
            raise Denied(400, "none of the selected mailboxes is in this project")
        return users

    async def _ids(request: Request, name: str) -> list[str]:
        if not _is_form(request):
            return []
        return [str(v) for v in (await request.form()).getlist(name)]

    @app.post("/actions/sync", status_code=202,
              summary="Start a pass for the selected mailboxes (form field `mailbox`, "
                      "repeatable; none = all)")
    async def start_sync(request: Request) -> Response:
        who, form = await writer(request)
        users = selected_users(form, await _ids(request, "mailbox"))
        label = ", ".join(users) if users else "all mailboxes"
        job = jobs.start("sync", label, who.role, actions.sync_work(proj, users))
        return done(request, who, f"pass started for {label} (action #{job.id})",
                    _back(form, "/mailboxes"), {"job": job.as_json()})

    @app.post("/actions/verify", status_code=202,
              summary="Verify the selected mailboxes (form field `mailbox`; none = all)")
    async def start_verify(request: Request) -> Response:
        who, form = await writer(request)
        users = selected_users(form, await _ids(request, "mailbox"))
        label = ", ".join(users) if users else "all mailboxes"
        job = jobs.start("verify", label, who.role, actions.verify_work(proj, users))
        return done(request, who, f"verification started for {label} (action #{job.id})",
                    _back(form, "/"), {"job": job.as_json()})

    @app.post("/actions/dns-check", status_code=202, summary="Run the DNS check now")
    async def start_dns(request: Request) -> Response:
        who, form = await writer(request)
        if not proj.config.domains:
            raise Denied(400, "no domains in mxshift.toml ([project] domains)")
        job = jobs.start("dns-check", ", ".join(proj.config.domains), who.role,
                         actions.dns_work(proj))
        return done(request, who, f"DNS check started (action #{job.id})", _back(form, "/"),
                    {"job": job.as_json()})

    @app.post("/actions/cutover", status_code=202,
              summary="Cut over: needs `confirm` = the project name; refused while the DNS "
                      "gate is open unless `force` is set")
    async def start_cutover(request: Request) -> Response:
        who, form = await writer(request)
        if not actions.cutover_available():
            raise Denied(501, "cutover is not available in this version of mxshift")
        if str(form.get("confirm", "")).strip() != proj.config.name:
            raise Denied(400, f"type the project name ({proj.config.name}) to confirm the "
                              "cutover")
        force = str(form.get("force", "")) in ("1", "on", "true", "yes")
        state = await run_in_threadpool(views.cutover_state, ro)
        if not state["dns_ready"] and not force:
            raise Denied(409, "DNS is not ready for the cutover: "
                         + "; ".join(state["dns_blockers"]) + ". Run the DNS check again "
                         "once the records are fixed, or force the cutover (recorded)")
        job = jobs.start("cutover", "cutover" + (" (forced)" if force else ""), who.role,
                         actions.cutover_work(proj, force=force, actor=f"dashboard {who.role}"))
        return done(request, who, f"cutover started (action #{job.id})", "/cutover",
                    {"job": job.as_json()})

    @app.post("/mailboxes/{mailbox_id:int}/accept",
              summary="Accept findings of this mailbox with a reason (fields `finding`, "
                      "repeatable, and `reason`)")
    async def accept(request: Request, mailbox_id: int) -> Response:
        who, form = await writer(request)
        ids = [int(x) for x in await _ids(request, "finding") if x.isdigit()]
        data = await run_in_threadpool(views.mailbox, ro, mailbox_id)
        if data is None:
            raise Denied(404, f"no mailbox {mailbox_id}")
        mine = {f["id"] for f in (data["verification"] or {}).get("findings", [])}
        if not set(ids) <= mine:
            raise Denied(400, "a selected finding is not in this mailbox's latest "
                              "verification: reload the page")
        try:
            # a write: it may wait for a pass's transaction, never on the event loop
            n = await run_in_threadpool(actions.accept, proj, ids, str(form.get("reason", "")),
                                        f"dashboard {who.role}")
        except MxshiftError as exc:
            raise Denied(400, str(exc)) from exc
        return done(request, who, f"{n} finding(s) accepted", f"/mailboxes/{mailbox_id}",
                    {"accepted": n}, status=200)

    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.jobs.shutdown()
    app.state.ro.db.dispose()


def _is_form(request: Request) -> bool:
    ctype = request.headers.get("content-type", "")
    return ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


def _safe_next(target: str) -> str:
    """Only local paths: a login link must not bounce the admin to another site."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _back(form: dict[str, Any], default: str) -> str:
    return _safe_next(str(form.get("back") or default))
