"""The README's two set-up commands, run by bash as written, with every program they call replaced by a
recorder: as root they need no sudo, as a user they ask sudo for the system packages only, and the
package lists are refreshed before anything is installed. CI runs the real commands (.ci/run)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = ("id", "sudo", "apt-get", "python3")


def readme_command(number: int) -> str:
    lines = (REPO / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"# {number}."))
    return lines[start + 1]


def _run_recorded(command: str, uid: int, tmp_path: Path) -> list[str]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for program in PROGRAMS:
        script = bin_dir / program
        if program == "id":
            script.write_text(f"#!/bin/sh\necho {uid}\n")
        elif program == "sudo":  # sudo runs what it is given, as the real one would
            script.write_text(f'#!/bin/sh\necho "sudo $*" >> {log}\nexec "$@"\n')
        else:
            script.write_text(f'#!/bin/sh\necho "{program} $*" >> {log}\n')
        script.chmod(0o755)
    # .venv/bin/... are the commands' own paths: recorders stand there too.
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for program in ("pip", "python", "pipefleet"):
        (venv_bin / program).write_text(f'#!/bin/sh\necho "venv/{program} $*" >> {log}\n')
        (venv_bin / program).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("uid", [0, 1000], ids=["root", "user-with-sudo"])
def test_command_2_installs_system_packages_as_root_and_with_sudo(uid, tmp_path):
    calls = _run_recorded(readme_command(2), uid, tmp_path)
    prefix = "" if uid == 0 else "sudo "
    apt = [call for call in calls if call.startswith(f"{prefix}apt-get")]
    if uid == 0:
        assert not any(call.startswith("sudo") for call in calls)  # no sudo in a container or CI image
    assert apt[0] == f"{prefix}apt-get update"  # package lists first: a fresh container has none
    assert re.match(rf"{prefix}apt-get install -y .*\bchromium\b.*\btesseract-ocr\b", apt[1])
    assert not any(call.startswith("sudo") for call in calls if "apt-get" not in call)  # pip and tests as the user
    assert calls[-1].startswith("venv/python -m pytest --tier all")
    assert any("-c constraints.txt" in call for call in calls if call.startswith("venv/pip"))


def test_command_1_needs_no_sudo_and_runs_the_default_job(tmp_path):
    calls = _run_recorded(readme_command(1), 1000, tmp_path)
    assert not any(call.startswith("sudo") for call in calls)
    assert calls[-1] == "venv/pipefleet annotate examples/minilm-embeddings.yaml"
