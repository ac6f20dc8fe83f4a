"""A killed import resumes after its last committed batch: no row lost or doubled, exact counts."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from app import clock
from app.db import db
from app.models import Customer, CustomerTag, ImportBatch
from app.services import import_jobs, importing
from app.tasks import import_jobs as import_tasks
from tests.factories import make_staff, make_store

ROOT = Path(__file__).resolve().parent.parent

# Batches of three rows; the comments say what crosses a batch boundary.
CROSSING = (
    "external id,name,phone,birthday,tags\n"
    "A,Aisyah,0121000001,,VIP\n"  # 0 created
    "B,Broken,12,,\n"  # 1 rejected; first row of group B: the group lands here via row 3
    ",Chen,0121000002,,\n"  # 2 created
    "B,Bella,0121000003,,new\n"  # 3 batch 2: counted as group B's creation
    ",Aisyah again,0121000001,,lash\n"  # 4 batch 2: A's phone, seen in batch 1 → merged
    "C,Cik Ros,0121000004,,\n"  # 5 created
    "D,Dewi,0121000005,1990-02-31,\n"  # 6 batch 3: rejected (bad date), first row of group D
    "E,Eng,0121000006,,\n"  # 7 created
    ",Farah,0121000007,,\n"  # 8 created
    "D,Dewi,0121000005,1990-02-21,\n"  # 9 batch 4: group D lands through here
    "C,Cik Ros,0121000004,,VIP\n"  # 10 batch 4: member of group C → merged
    ",Chen,0121000002,,\n"  # 11 batch 4: member of Chen's phone group → merged
)


class Killed(BaseException):
    """The worker process dying."""


def _job(store, manager, data: bytes, batch_size: int) -> str:
    job_id = import_jobs.create_job(store, manager, "customers", "c.csv", data, clock.now())
    table = import_jobs.load_table(import_jobs.read_job(job_id))
    mapping = importing.suggest_mapping("customers", table.headers)
    import_jobs.write_job(
        job_id,
        mapping=mapping,
        batch_size=batch_size,
        options={"create_tags": True, "triggers_plans": False},
    )
    import_jobs.queue(job_id, clock.now())
    return job_id


def _outcome(store, job_id: str) -> tuple:
    job = import_jobs.read_job(job_id)
    customers = Customer.select().where(Customer.store == store.id)
    links = CustomerTag.select().join(Customer).where(Customer.store == store.id)
    return (
        job["state"],
        job["totals"],
        job["landed"],
        sorted((c.external_id or "", c.name, c.phone) for c in customers),
        links.count(),
        [(r["line"], r["message"]) for r in import_jobs.rejected_rows(job)],
    )


def test_dying_after_each_commit_before_saving_progress_keeps_counts_exact(app, monkeypatch):
    data = CROSSING.encode()
    straight_store = make_store("straight", region="MY")
    manager = make_staff("manager", [straight_store])
    straight = _job(straight_store, manager, data, 3)
    import_jobs.run(straight, clock.now())
    expected = _outcome(straight_store, straight)
    assert expected[0] == "done"
    assert expected[1] == {"created": 7, "updated": 0, "unchanged": 0, "merged": 3, "rejected": 2}
    assert len(expected[3]) == 7 and expected[4] == 4
    assert [line for line, _ in expected[5]] == [3, 8]

    store = make_store("killed", region="MY")
    job_id = _job(store, make_staff("manager", [store]), data, 3)
    real_write = import_jobs.write_job
    deaths = []

    def dies_before_saving_progress(job_key, **fields):
        # The batch has committed; the process dies before the job file says so.
        if "next_row" in fields and fields.get("state") is None and len(deaths) < 4:
            if fields["next_row"] > (deaths[-1] if deaths else 0):
                deaths.append(fields["next_row"])
                raise Killed
        return real_write(job_key, **fields)

    monkeypatch.setattr(import_jobs, "write_job", dies_before_saving_progress)
    for _ in range(4):
        with pytest.raises(Killed):
            import_jobs.run(job_id, clock.now())
        saved = import_jobs.read_job(job_id)
        assert saved["state"] == "running"
        assert saved["next_row"] < ImportBatch.select().where(ImportBatch.job == job_id).count() * 3
        import_jobs.queue(job_id, clock.now())
    assert deaths == [3, 6, 9, 12]
    monkeypatch.setattr(import_jobs, "write_job", real_write)
    import_jobs.run(job_id, clock.now())
    assert _outcome(store, job_id) == expected
    assert import_jobs.read_job(straight)["tags_created"] == {"VIP": 2, "lash": 1, "new": 1}
    assert import_jobs.read_job(job_id)["tags_created"] == {"VIP": 2, "lash": 1, "new": 1}


def _big_file(rows: int) -> bytes:
    lines = ["external id,name,phone,tags"]
    for n in range(rows):
        phone = "12" if n % 97 == 60 else f"012{n:07d}"
        ext = f"M{n % (rows - 100)}"  # the last 100 rows repeat earlier members: merged
        lines.append(f"{ext},Member {n},{phone},tag{n % 3}")
    return ("\n".join(lines) + "\n").encode()


def _database_url() -> str:
    """The test database, as a URL another process can open."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{db.obj.database}"


WORKER = """
import sys
from app.db import db, init_db
init_db(sys.argv[1])
from app import clock
from app.db import db
from app.services import import_jobs
with db.connection_context():
    import_jobs.run(sys.argv[2], clock.now())
"""


def test_sigkill_of_the_worker_mid_import_loses_and_doubles_nothing(app):
    data = _big_file(3000)
    straight_store = make_store("straight", region="MY")
    straight = _job(straight_store, make_staff("manager", [straight_store]), data, 50)
    import_jobs.run(straight, clock.now())
    expected = _outcome(straight_store, straight)
    assert expected[0] == "done" and expected[1]["merged"] >= 90 and expected[1]["rejected"] > 0

    store = make_store("killed", region="MY")
    job_id = _job(store, make_staff("manager", [store]), data, 50)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, _database_url(), job_id], cwd=ROOT, env=env
    )
    committed = ImportBatch.select().where(ImportBatch.job == job_id)
    deadline = time.monotonic() + 120
    while committed.count() < 5 and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(timeout=30) == -signal.SIGKILL
    landed_batches = committed.count()
    assert 5 <= landed_batches < 60, "the worker must die mid-import"
    assert import_jobs.read_job(job_id)["state"] == "running"

    old = (clock.now() - timedelta(minutes=3)).isoformat()
    import_jobs.write_job(job_id, heartbeat=old)
    assert import_tasks.resume_stale_imports.call_local() == [job_id]
    assert _outcome(store, job_id) == expected
    assert Customer.select().where(Customer.store == store.id).count() == expected[1]["created"]
