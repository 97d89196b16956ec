"""The endpoint's one error-to-status map (serve/errors.py), without Serve."""

from __future__ import annotations

import json

import pytest

from pipefleet.errors import BadInput, BadParameter, ModelError, ServerFault
from serve import errors as E


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (E.MalformedRequest("bad JSON"), 400),
        (BadParameter("parameter top_k: an integer"), 400),  # a BadInput, but its nearest class wins
        (E.Unauthorized("no token"), 401),
        (E.RouteNotFound("no route"), 404),
        (E.MethodNotAllowed("GET"), 405),
        (E.BodyTooLarge("too big"), 413),
        (BadInput("input is empty"), 422),
        (ModelError("the model failed"), 500),
        (ServerFault("tesseract is not installed"), 500),
        (E.Overloaded("full"), 503),
        (E.ReplicaUnavailable("gone"), 503),
        (E.TimedOut("too slow"), 504),
        (RuntimeError("a bug"), 500),
        (E.RowsFailed("input 0: empty", ["bad_input", "bad_input"]), 422),
        (E.RowsFailed("input 1: model", ["bad_input", "model_error"]), 500),
    ],
)
def test_each_kind_of_problem_has_one_status(exc, status):
    assert E.status_of(exc) == status


def test_error_answers_are_json_with_the_message_and_their_headers():
    answer = E.error_response(E.Overloaded("overloaded: retry later"))
    assert answer.status_code == 503 and answer.headers["retry-after"] == str(E.RETRY_AFTER_S)
    assert json.loads(answer.body) == {"error": "overloaded: retry later"}
    assert E.error_response(E.Unauthorized("no")).headers["www-authenticate"] == "Bearer"
    rows = E.error_response(E.RowsFailed("input 1: bad", ["bad_input"], errors=[{"index": 1, "error": "bad"}]))
    assert json.loads(rows.body) == {"error": "input 1: bad", "errors": [{"index": 1, "error": "bad"}]}
    # Anything that is not one of pipefleet's errors is reported with its type.
    assert json.loads(E.error_response(KeyError("x")).body) == {"error": "KeyError: 'x'"}
