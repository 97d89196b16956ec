"""pipefleet serve on a local Ray: an endpoint that cannot fit the machine exits 2 instead of waiting."""

from __future__ import annotations


def test_serve_that_cannot_fit_exits_2_instead_of_waiting(tmp_path, tiny_model):
    import os
    import subprocess
    import sys

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
