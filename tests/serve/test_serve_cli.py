"""pipefleet serve on a local Ray, as a user starts it: it serves and stops, or exits 2 when it cannot fit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support import free_port


def test_serve_that_cannot_fit_exits_2_instead_of_waiting(tmp_path, tiny_model):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"task: text-classification\nmodel: {tiny_model('text-classification')}\nserve: {{num_cpus: 64}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "pipefleet_cli", "serve", str(spec), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_ADDRESS": ""},
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the endpoint cannot start on this machine" in result.stderr and "lower serve.num_cpus" in result.stderr


@pytest.mark.parametrize("exported", [None, "1"], ids=["defaults", "throughput-mode-exported"])
def test_pipefleet_serve_answers_and_stops_on_sigterm(tmp_path, tiny_model, exported):
    """The command a user runs: it says where it serves, answers a request, and stops cleanly on SIGTERM,
    also with RAY_SERVE_THROUGHPUT_OPTIMIZED exported (the README says an exported value wins)."""
    port = free_port()
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"task: text-classification\nmodel: {tiny_model('text-classification')}\nserve: {{route: /c}}\n")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_ADDRESS": ""}
    env.pop("RAY_SERVE_THROUGHPUT_OPTIMIZED", None)
    if exported is not None:
        env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = exported
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipefleet_cli", "serve", str(spec), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while "pipefleet: serving" not in log.read_text():
            assert process.poll() is None, f"pipefleet serve exited {process.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        assert "/c: text-classification with" in log.read_text()  # what the replica loaded, as it says at start
        answer = httpx.post(f"http://127.0.0.1:{port}/c", json={"inputs": "a fine day"}, timeout=60)
        assert answer.status_code == 200 and set(answer.json()[0][0]) == {"label", "score"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log.read_text()[-3000:]
        assert "pipefleet: stopping" in log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
