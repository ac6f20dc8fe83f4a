"""The `revisit` commands of the contract."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from app.models import ApiToken, Staff, StaffStore, Store
from app.services import auth


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_web_and_worker_and_ctrl_c_stops_both(tmp_path):
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
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
        # The embedded worker runs the periodic tick: its huey database appears and records the run.
        for _ in range(100):
            if (tmp_path / "huey.db").exists():
                break
            time.sleep(0.1)
        assert (tmp_path / "huey.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode is not None
    text = out.decode()
    assert "Background worker started (pid " in text
    worker_pid = int(text.split("Background worker started (pid ")[1].split(")")[0])
    for _ in range(100):
        if not Path(f"/proc/{worker_pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{worker_pid}").exists(), "the embedded worker outlived serve"
