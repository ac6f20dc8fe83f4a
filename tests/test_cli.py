"""The `revisit` commands of the contract."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from app.models import ApiToken, Customer, Staff, StaffStore, Store, Tag
from app.services import auth
from tests.factories import make_store


def test_create_store_user_and_token(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "create-store",
            "--key",
            "kl",
            "--name",
            "Bunga KL",
            "--timezone",
            "Asia/Kuala_Lumpur",
            "--region",
            "MY",
            "--currency",
            "MYR",
            "--locale",
            "ms",
        ]
    )
    assert result.exit_code == 0, result.output
    store = Store.get(Store.key == "kl")
    assert (store.timezone, store.region, store.currency, store.locale) == (
        "Asia/Kuala_Lumpur",
        "MY",
        "MYR",
        "ms",
    )

    result = runner.invoke(
        args=[
            "create-user",
            "--email",
            "Farah@Example.test",
            "--role",
            "manager",
            "--store",
            "kl",
            "--password",
            "a long enough password",
        ]
    )
    assert result.exit_code == 0, result.output
    staff = Staff.get(Staff.email == "farah@example.test")
    assert staff.role == "manager"
    assert StaffStore.select().where(StaffStore.staff == staff).count() == 1
    assert auth.verify_password(staff, "a long enough password")

    result = runner.invoke(args=["token", "create", "--store", "kl", "--name", "POS"])
    assert result.exit_code == 0, result.output
    raw = result.output.strip().splitlines()[-1]
    token = ApiToken.get()
    assert raw.startswith("rv_") and token.prefix == raw[:10] and raw not in token.token_hash


def test_create_store_rejects_bad_timezone_region_and_currency(app):
    runner = app.test_cli_runner()
    base = ["create-store", "--key", "x", "--name", "X"]
    bad_tz = runner.invoke(
        args=base + ["--timezone", "Mars/Olympus", "--region", "MY", "--currency", "MYR"]
    )
    assert bad_tz.exit_code != 0 and "timezone" in bad_tz.output
    bad_region = runner.invoke(
        args=base + ["--timezone", "UTC", "--region", "XX", "--currency", "MYR"]
    )
    assert bad_region.exit_code != 0 and "region" in bad_region.output
    bad_currency = runner.invoke(
        args=base + ["--timezone", "UTC", "--region", "MY", "--currency", "ABC"]
    )
    assert bad_currency.exit_code != 0 and "currency" in bad_currency.output
    assert Store.select().count() == 0


def test_create_user_needs_an_existing_store_and_a_new_email(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["create-user", "--email", "a@b.test", "--role", "owner", "--store", "nope"]
    )
    assert result.exit_code != 0 and "No store" in result.output
    runner.invoke(
        args=[
            "create-store",
            "--key",
            "kl",
            "--name",
            "KL",
            "--timezone",
            "UTC",
            "--region",
            "MY",
            "--currency",
            "MYR",
        ]
    )
    first = runner.invoke(
        args=["create-user", "--email", "a@b.test", "--role", "owner", "--store", "kl"]
    )
    assert first.exit_code == 0 and "Password:" in first.output
    again = runner.invoke(
        args=["create-user", "--email", "a@b.test", "--role", "owner", "--store", "kl"]
    )
    assert again.exit_code != 0 and "already exists" in again.output


def test_tick_prints_a_one_line_summary(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["tick", "--at", "2026-06-17T10:00:00+08:00"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tick at 2026-06-17T02:00:00+00:00")
    os.environ.pop("REVISIT_NOW", None)


def test_import_customers_prints_each_rejected_row_and_exits_non_zero(app, tmp_path):
    make_store("kl")
    csv = tmp_path / "clients.csv"
    csv.write_text(
        "name,phone\nSiti Aminah,+60123456789\nTan Ah Kow,012-345 6780\nNo Phone,xyz\n",
        encoding="utf-8",
    )
    result = app.test_cli_runner().invoke(args=["import", "customers", str(csv), "--store", "kl"])
    assert result.exit_code == 1
    assert "2 created" in result.output and "1 rejected" in result.output
    assert "row 4: phone" in result.output
    assert sorted(c.phone for c in Customer.select()) == ["+60123456780", "+60123456789"]


def test_import_of_a_clean_file_exits_zero(app, tmp_path):
    make_store("kl")
    csv = tmp_path / "clients.csv"
    csv.write_text("name,phone\nSiti Aminah,+60123456789\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import", "customers", str(csv), "--store", "kl"])
    assert result.exit_code == 0, result.output
    assert "1 created" in result.output


def _tagged_clients(tmp_path, second_tags: str):
    """A two-client CSV: Siti tagged VIP, Tan tagged `second_tags`."""
    csv = tmp_path / "clients.csv"
    rows = f"Siti Aminah,+60123456789,VIP\nTan Ah Kow,012-345 6780,{second_tags}\n"
    csv.write_text("name,phone,tags\n" + rows, encoding="utf-8")
    return csv


def test_import_prints_the_tags_it_created_and_a_reimport_names_none(app, tmp_path):
    make_store("kl")
    csv = _tagged_clients(tmp_path, "VIP;lash")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["import", "customers", str(csv), "--store", "kl"])
    assert result.exit_code == 0, result.output
    assert "New tags this import created (2):" in result.output
    assert "'VIP': 2 customers" in result.output and "'lash': 1 customer\n" in result.output
    again = runner.invoke(args=["import", "customers", str(csv), "--store", "kl"])
    assert again.exit_code == 0 and "New tags" not in again.output


def test_import_with_unknown_tags_reject_rejects_the_row_and_names_the_tag(app, tmp_path):
    store = make_store("kl")
    Tag.create(store=store, name="VIP")
    csv = _tagged_clients(tmp_path, "VIP ;lash")
    args = ["import", "customers", str(csv), "--store", "kl", "--unknown-tags", "reject"]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 1
    assert "1 created" in result.output and "1 rejected" in result.output
    assert "row 3: tags: unknown tag(s): lash" in result.output
    assert "New tags" not in result.output
    assert [t.name for t in Tag.select()] == ["VIP"]
    assert [c.phone for c in Customer.select()] == ["+60123456789"]


def test_import_rejects_an_unknown_choice_for_unknown_tags(app, tmp_path):
    make_store("kl")
    csv = tmp_path / "clients.csv"
    csv.write_text("name,phone\nSiti Aminah,+60123456789\n", encoding="utf-8")
    args = ["import", "events", str(csv), "--store", "kl", "--unknown-tags", "ignore"]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 2 and "create" in result.output and "reject" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path, *flags, while_up=None, stop=signal.SIGINT) -> str:
    """Run `revisit serve` on a fresh SQLite instance until /healthz answers, call
    `while_up(log)`, stop it (Ctrl-C unless told), and answer everything it printed."""
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.pop("REVISIT_HUEY_IMMEDIATE", None)
    env["REVISIT_INSTANCE"] = str(tmp_path)
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "app.cli", "init"],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *flags],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Ctrl-C as at a terminal, even when this run itself ignores SIGINT (a background job).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        body = None
        for _ in range(100):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body is not None and b'"status":"ok"' in body
        login = urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2)
        assert login.status == 200
        if while_up is not None:
            while_up(log)
    finally:
        if stop == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        else:
            proc.send_signal(stop)
        proc.wait(timeout=30)
    return log.read_text()


def _worker_ticked(log):
    # The embedded worker runs the periodic tick as soon as it starts.
    for _ in range(300):
        if "app.tasks.jobs: tick at " in log.read_text():
            break
        time.sleep(0.1)
    assert "app.tasks.jobs: tick at " in log.read_text()


def _assert_worker_stopped(text: str) -> None:
    assert "Background worker started (pid " in text and "Huey consumer started" in text
    worker_pid = int(text.split("Background worker started (pid ")[1].split(")")[0])
    for _ in range(100):
        if not Path(f"/proc/{worker_pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{worker_pid}").exists(), "the embedded worker outlived serve"


def test_serve_runs_web_and_worker_and_ctrl_c_stops_both(tmp_path):
    _assert_worker_stopped(_serve(tmp_path, while_up=_worker_ticked))


def test_sigterm_to_serve_stops_its_worker_too(tmp_path):
    _assert_worker_stopped(_serve(tmp_path, while_up=_worker_ticked, stop=signal.SIGTERM))


def test_serve_no_worker_serves_the_web_app_alone(tmp_path):
    text = _serve(tmp_path, "--no-worker")
    assert "Revisit is running on http://127.0.0.1:" in text
    assert "Background worker started" not in text and "Huey consumer started" not in text
