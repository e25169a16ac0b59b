"""``irbis serve`` (the review web app) and ``irbis users`` (who may use it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbis.cli.common import JsonOpt, emit_json, err, out

users_app = typer.Typer(help="Users of the review web app.", no_args_is_help=True)


def serve(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: the whole LAN).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help=(
                "Server processes (several reviewers at once): about one per CPU core on "
                "SQLite, two per core on PostgreSQL (a process waiting for the database "
                "server uses no CPU)."
            ),
        ),
    ] = 1,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="PEM certificate (chain) to serve HTTPS directly; needs --tls-key."),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help=(
                "Addresses of a reverse proxy whose X-Forwarded-Proto/-For headers are "
                "believed (comma-separated; default 127.0.0.1): behind an HTTPS proxy, "
                "cookies are then marked Secure and logins counted per client address."
            )
        ),
    ] = None,
    insecure_open: Annotated[
        bool,
        typer.Option(
            "--insecure-open",
            help=(
                "Serve a project without users on a non-loopback address anyway: everyone "
                "who reaches it gets full rights and precise locations."
            ),
        ),
    ] = False,
) -> None:
    """Open the review web app: sequences, labels, identifications, census.

    On any address but loopback a project must have users (authentication
    is on by default); see irbis users add.
    """
    import os

    import uvicorn

    from irbis.core.errors import BadInputError
    from irbis.store import Project
    from irbis.web import create_app
    from irbis.web.app import HOST_ENV, PROJECT_ENV
    from irbis.web.auth import has_users
    from irbis.web.server import is_loopback, tls_options

    ssl = tls_options(tls_cert, tls_key)  # one-line errors before the project is opened
    p = Project.open(project)  # brings the schema up to date once, before any worker
    users = has_users(p)
    if not users and not is_loopback(host) and not insecure_open:
        p.close()
        raise BadInputError(
            f"serve --host {host}",
            "the project has no users, so everyone who can reach that address would get "
            "full rights and precise locations",
            f"create the first admin: irbis users add {project} NAME --role admin "
            "--precise-locations, then log in with the token it prints; or add "
            "--insecure-open to serve it open on purpose",
        )
    from irbis.store.sequence_summary import refresh

    refresh(p.engine)  # and the grid's summaries (after an upgrade, or a hand edit)
    mode = "users log in" if users else "local mode (no users: full rights)"
    procs = f", {workers} workers" if workers > 1 else ""
    scheme = "https" if ssl else "http"
    err.print(
        f"irbis serving [bold]{p.settings.name}[/] at {scheme}://{host}:{port}/ ({mode}{procs})"
    )
    if not ssl and not is_loopback(host):
        err.print(
            "[yellow]plain HTTP: tokens and session cookies cross the network readable; "
            "use --tls-cert/--tls-key or an HTTPS reverse proxy (see README)[/]"
        )
    if not users and insecure_open and not is_loopback(host):
        err.print("[red]--insecure-open: no login; anyone reaching this address is an admin[/]")
    # Local mode answers only requests addressed to loopback or to --host
    # (no DNS rebinding); the app and every worker read it from here.
    os.environ[HOST_ENV] = host
    config: dict = dict(ssl)
    if forwarded_allow_ips is not None:
        config["forwarded_allow_ips"] = forwarded_allow_ips
    if workers > 1:
        # Python runs one request's code at a time per process; several
        # processes let a team's requests use every core. Each worker opens
        # the project itself (create_app_from_env).
        p.close()
        os.environ[PROJECT_ENV] = str(p.root)
        from irbis.web.server import serve_workers

        serve_workers(host, port, workers, "irbis.web.app:create_app_from_env", **config)
        return
    app = create_app(p)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", **config)
    finally:
        p.close()


@users_app.command("add")
def users_add(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="viewer, reviewer or admin.")] = "reviewer",
    precise_locations: Annotated[
        bool,
        typer.Option("--precise-locations", help="May see sensitive species' stations precisely."),
    ] = False,
    display_name: Annotated[str, typer.Option(help="Full name shown in the app.")] = "",
    organisation: Annotated[str, typer.Option(help="Organisation of the user.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Add a user and print their token (shown once: only its hash is kept)."""
    from irbis.store import Project
    from irbis.web.auth import create_user

    with Project.open(project) as p:
        token = create_user(
            p,
            name,
            role,
            precise_locations=precise_locations,
            display_name=display_name,
            organisation=organisation,
        )
    if as_json:
        emit_json(
            {"name": name, "role": role, "precise_locations": precise_locations, "token": token}
        )
        return
    err.print(f"user [bold]{name}[/] ({role}) added; their token, shown only now:")
    out.print(token, highlight=False, soft_wrap=True)


@users_app.command("list")
def users_list(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    as_json: JsonOpt = False,
) -> None:
    """List the users: role, organisation, precise locations, whether a token is set."""
    from rich.table import Table

    from irbis.store import Project
    from irbis.web.auth import list_users

    with Project.open(project) as p:
        rows = list_users(p)
    if as_json:
        emit_json({"users": rows, "count": len(rows)})
        return
    if not rows:
        err.print("no users: the app runs in local mode (irbis users add PROJECT NAME)")
        return
    table = Table(title=f"{len(rows)} users")
    for col in ("name", "full name", "role", "organisation", "precise locations", "token"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            r["display_name"],
            r["role"],
            r["organisation"],
            "yes" if r["precise_locations"] else "no",
            "set" if r["token_set"] else "revoked",
        )
    out.print(table)


@users_app.command("role")
def users_role(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str | None, typer.Option(help="New role: viewer, reviewer or admin.")] = None,
    precise_locations: Annotated[
        bool | None,
        typer.Option(
            "--precise-locations/--no-precise-locations",
            help="May (or may no longer) see sensitive species' stations precisely.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a user's role or clearance for precise locations (from their next request)."""
    from irbis.core.errors import BadInputError
    from irbis.store import Project
    from irbis.web.auth import set_role

    if role is None and precise_locations is None:
        raise BadInputError(
            f"users role {name}",
            "nothing to change",
            "give --role viewer|reviewer|admin and/or --precise-locations/--no-precise-locations",
        )
    with Project.open(project) as p:
        res = set_role(p, name, role, precise_locations=precise_locations)
    if as_json:
        emit_json(res)
        return
    what = "precise locations" if res["precise_locations"] else "no precise locations"
    if res["changed"]:
        err.print(f"user [bold]{res['name']}[/] is now {res['role']} ({what})")
    else:
        err.print(f"user [bold]{res['name']}[/] already {res['role']} ({what}): nothing changed")


@users_app.command("revoke")
def users_revoke(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    name: Annotated[str, typer.Argument(help="Login name.")],
    as_json: JsonOpt = False,
) -> None:
    """Stop a user's token working now (their work stays; irbis users token gives a new one)."""
    from irbis.store import Project
    from irbis.web.auth import revoke_token

    with Project.open(project) as p:
        had = revoke_token(p, name)
    if as_json:
        emit_json({"name": name, "revoked": had})
        return
    if had:
        err.print(f"user [bold]{name}[/]: token revoked; it no longer opens the app")
    else:
        err.print(f"user [bold]{name}[/] had no token: nothing to revoke")


@users_app.command("token")
def users_token(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    name: Annotated[str, typer.Argument(help="Login name.")],
    as_json: JsonOpt = False,
) -> None:
    """Give a user a new token and print it (shown once); the old one stops working."""
    from irbis.store import Project
    from irbis.web.auth import new_token

    with Project.open(project) as p:
        token = new_token(p, name)
    if as_json:
        emit_json({"name": name, "token": token})
        return
    err.print(f"user [bold]{name}[/]: new token, shown only now (the old one no longer works):")
    out.print(token, highlight=False, soft_wrap=True)
