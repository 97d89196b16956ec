"""Every image, audio and multimodal task over HTTP equals the handler: the endpoint's JSON carries the
handler's outputs.
"""

from __future__ import annotations

import httpx
import pytest

from tests.every_task import CASES, IDS, _comparable, _expected, _inputs
from tests.oracle import assert_matches
from tests.support import as_json, running_endpoint


@pytest.fixture(scope="module")
def every_route(local_ray, tiny_model):

    specs = [
        {
            "task": case.task,
            "model": tiny_model(case.task),
            "device": "cpu",
            "params": case.params,
            "serve": {"route": f"/{case.task}", "num_cpus": 0.05, "max_batch_size": 4, "batch_wait_timeout_s": 0.01},
        }
        for case in CASES
    ]
    with running_endpoint(specs, "pipefleet-every-task") as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_http_output_equals_the_handler(every_route, tiny_model, case):
    reply = every_route.post(f"/{case.task}", json={"inputs": [as_json(x) for x in _inputs(case)]})
    assert reply.status_code == 200, reply.text
    assert_matches(_comparable(reply.json()), _expected(case, tiny_model(case.task)))
