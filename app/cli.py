"""The `revisit` command line (also available as `flask --app wsgi …`)."""

import os
import signal
import subprocess
import sys

import click
from flask.cli import FlaskGroup, with_appcontext

from app import clock


def _store_or_fail(key: str):
    from app.models import Store

    store = Store.get_or_none(Store.key == key)
    if store is None:
        raise click.ClickException(
            f"No store with key {key!r}. Create it with `revisit create-store`."
        )
    return store


@click.command("init")
@with_appcontext
def init_cmd():
    """Create or upgrade the database schema (safe to run again)."""
    from app import migrate

    applied = migrate.upgrade()
    if applied:
        click.echo("Applied migrations: " + ", ".join(applied))
    else:
        click.echo("Database is up to date.")


@click.command("create-store")
@click.option("--key", required=True)
@click.option("--name", required=True)
@click.option("--timezone", "tz", required=True)
@click.option("--region", required=True, help="Default phone region, e.g. MY, TH, CN, TW, HK")
@click.option("--currency", required=True)
@click.option("--locale", default="en")
@with_appcontext
def create_store_cmd(key, name, tz, region, currency, locale):
    """Add a store."""
    from app.services import stores

    try:
        store = stores.create_store(
            key=key, name=name, timezone=tz, region=region, currency=currency, locale=locale
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created store {store.key} ({store.name}, {store.timezone}).")


@click.command("create-user")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["employee", "manager", "owner"]), required=True)
@click.option("--store", "store_keys", required=True, multiple=True)
@click.option("--name", default=None)
@click.option("--password", default=None)
@with_appcontext
def create_user_cmd(email, role, store_keys, name, password):
    """Add a login."""
    from app.models import Staff
    from app.services import auth

    stores = [_store_or_fail(k) for k in store_keys]
    if Staff.get_or_none(Staff.email == email.strip().lower()):
        raise click.ClickException(f"A login for {email} already exists.")
    try:
        staff, pw = auth.create_staff(email, name or email.split("@")[0], role, stores, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created {role} {staff.email} in {', '.join(s.key for s in stores)}.")
    if not password:
        click.echo(f"Password: {pw}")


@click.group("token")
def token_group():
    """API tokens."""


@token_group.command("create")
@click.option("--store", "store_key", required=True)
@click.option("--name", default="")
@with_appcontext
def token_create_cmd(store_key, name):
    """Print a new API token for a store (shown once, stored hashed)."""
    from app.services import tokens

    store = _store_or_fail(store_key)
    _, raw = tokens.create_token(store, name)
    click.echo(f"API token for store {store.key} (shown once):")
    click.echo(raw)


@click.command("demo")
@click.option("--customers", default=2000, show_default=True, type=int)
@with_appcontext
def demo_cmd(customers):
    """Load a believable demo business and print a login per role."""
    from app.services import demo

    logins = demo.load_demo(customers=customers, now=clock.now(), echo=click.echo)
    click.echo("")
    click.echo("Demo logins:")
    for role, email, password in logins:
        click.echo(f"  {role:<9} {email}  password: {password}")


@click.command("tick")
@click.option("--at", "at", default=None, help="ISO-8601 instant (default: now)")
@with_appcontext
def tick_cmd(at):
    """Do, once and synchronously, everything due at that instant."""
    from app.services import scheduler

    instant = clock.parse_instant(at) if at else clock.now()
    if at:
        os.environ["REVISIT_NOW"] = instant.isoformat()
    summary = scheduler.tick(now=instant)
    click.echo(summary.line(instant))


@click.command("worker")
@click.option("--workers", default=2, show_default=True, type=int)
def worker_cmd(workers):
    """Run the huey consumer alone."""
    from huey.consumer import Consumer

    from app import create_app
    from app.tasks import jobs  # noqa: F401 - registers the jobs
    from app.tasks.queue import huey

    create_app()
    consumer = Consumer(
        huey, workers=workers, worker_type="thread", periodic=True, check_worker_health=True
    )
    consumer.run()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Serve the web app alone.")
@click.option("--threads", default=8, show_default=True, type=int)
def serve_cmd(host, port, no_worker, threads):
    """Serve the web app and an embedded background worker; Ctrl-C stops both."""
    from waitress import serve

    from app import create_app

    worker = None
    if not no_worker:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"], start_new_session=True
        )
        click.echo(f"Background worker started (pid {worker.pid}).")
    app = create_app()
    click.echo(f"Revisit is running on http://{host}:{port}/  (Ctrl-C stops it)")
    # A process manager stops us with SIGTERM: leave through `finally` so the worker goes too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve(app, host=host, port=port, threads=threads, ident="revisit")
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGINT)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)


@click.group("import")
def import_group():
    """Import customers, cards or events from CSV / Excel."""


def _import(kind: str, path: str, store_key: str | None, unknown_tags: str = "create"):
    from app.models import Store
    from app.services import importing

    store = _store_or_fail(store_key) if store_key else Store.select().order_by(Store.id).first()
    if store is None:
        raise click.ClickException("Create a store first.")
    report = importing.import_file(
        kind, path, store=store, now=clock.now(), create_tags=unknown_tags == "create"
    )
    click.echo(report.summary())
    if report.tags_created:
        verb = "would create" if report.dry_run else "created"
        click.echo(f"New tags this import {verb} ({len(report.tags_created)}):")
        for name, count in sorted(report.tags_created.items()):
            click.echo(f"  {name!r}: {count} customer{'' if count == 1 else 's'}")
    for row in report.errors[:200]:
        click.echo(f"  row {row.line}: {row.message}", err=True)
    if report.errors:
        sys.exit(1)


for _kind in ("customers", "cards", "events"):

    def _make(kind):
        @import_group.command(kind)
        @click.argument("file", type=click.Path(exists=True, dir_okay=False))
        @click.option("--store", "store_key", default=None)
        @click.option(
            "--unknown-tags",
            type=click.Choice(["create", "reject"]),
            default="create",
            show_default=True,
            help="Tags that do not exist yet: create them, or reject the row and name them.",
        )
        @with_appcontext
        def cmd(file, store_key, unknown_tags):
            _import(kind, file, store_key, unknown_tags)

        cmd.__doc__ = f"Import {kind} from a CSV or Excel file."
        return cmd

    _make(_kind)


@import_group.command("purge-files")
@click.option("--days", type=int, default=None, help="Keep files this many days (default 30).")
@with_appcontext
def import_purge_cmd(days):
    """Remove the uploaded files of imports older than N days (the reports stay)."""
    from app.services import import_jobs

    purged = import_jobs.purge_old_files(clock.now(), days)
    click.echo(f"Removed the files of {len(purged)} imports.")


COMMANDS = [
    init_cmd,
    create_store_cmd,
    create_user_cmd,
    token_group,
    demo_cmd,
    tick_cmd,
    worker_cmd,
    serve_cmd,
    import_group,
]


def register(app) -> None:
    """Make the commands available as `flask --app wsgi …` too."""
    for command in COMMANDS:
        app.cli.add_command(command)


def _create_app():
    from app import create_app

    return create_app()


@click.group(
    cls=FlaskGroup, create_app=_create_app, add_default_commands=False, add_version_option=False
)
def main():
    """Revisit: follow-up plans that bring clients back."""


for _command in COMMANDS:
    main.add_command(_command)

if __name__ == "__main__":
    main()
