"""The README's promise: exactly two set-up commands, and CI runs the second one."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _set_up_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Set up", 1)[1].split("\n## ", 1)[0]


def test_readme_set_up_has_exactly_the_demo_and_the_test_command():
    blocks = re.findall(r"```sh\n(.*?)```", _set_up_section(), re.S)
    assert [b.strip() for b in blocks] == ["./scripts/demo.sh", "./scripts/test.sh"]
    for script in ("scripts/demo.sh", "scripts/test.sh", ".ci/run"):
        assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"


def test_ci_runs_the_readme_test_command_on_sqlite_and_on_postgresql_with_redis():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.count("bash scripts/test.sh") == 2
    assert "-u DATABASE_URL -u REDIS_URL" in ci
    assert "DATABASE_URL=postgresql://" in ci and "REDIS_URL=redis://" in ci


def test_demo_script_serves_on_the_port_the_readme_names():
    demo = (ROOT / "scripts" / "demo.sh").read_text(encoding="utf-8")
    assert '--port "${PORT:-5000}"' in demo
    assert "PORT=8080 ./scripts/demo.sh" in _set_up_section()
