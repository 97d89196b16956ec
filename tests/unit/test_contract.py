"""The handler contract: declarations checked when a class is made, parameters checked once, split
by stage and immutable, the engine's one outcome per input, and the code's shape (private API of
transformers in one module, arrows pointing one way)."""

from __future__ import annotations

import ast
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from pipefleet import params as P
from pipefleet.errors import BadParameter, FatalError, RowError
from pipefleet.handler import Capabilities, TaskHandler
from tests.unit.test_text_handlers import TEXTS

REPO = Path(__file__).resolve().parents[2]


class Doubler(TaskHandler):
    """A handler without a model: each text's length, doubled in forward (a stand-in for a model)."""

    task = "test-doubler"
    parameters = {"offset": P.staged(P.integer(0), "postprocess"), "scale": P.staged(P.integer(1), "forward")}
    forwarded: list[list[int]]

    def setup(self) -> None:
        self.forwarded = []

    @property
    def device(self) -> Any:
        import torch

        return torch.device("cpu")

    def preprocess(self, value: Any, params: Any) -> list[Any]:
        return [{"input_ids": list(range(len(value)))}]

    def forward(self, batch: list[Any], params: Any) -> list[Any]:
        self.forwarded.append([len(f["input_ids"]) for f in batch])
        return [len(f["input_ids"]) * params.get("scale", 2) for f in batch]

    def postprocess(self, outputs: list[Any], value: Any, params: Any) -> Any:
        return outputs[0] + params.get("offset", 0)

    def arrow_type(self, params: Any, inputs: Any = ()) -> Any:
        import pyarrow as pa

        return pa.int64()


def doubler(**spec: Any) -> Doubler:
    from pipefleet.spec import Spec

    handler = Doubler(Spec.model_construct(task="test-doubler", params={}, batch_size=2, max_batch_tokens=None, **spec))
    handler.setup()
    return handler


def test_a_streaming_declaration_needs_a_stream_method():
    with pytest.raises(TypeError, match="capabilities.streaming is True but stream\\(\\) is not implemented"):

        class Mute(Doubler):
            capabilities = Capabilities(streaming=True)


def test_a_display_must_be_one_the_adapters_know():
    with pytest.raises(TypeError, match="display 'sparkles'"):

        class Shiny(Doubler):
            capabilities = Capabilities(display="sparkles")


def test_the_media_kind_follows_the_main_input():
    from pipefleet.registry import handler_class

    assert handler_class("image-classification").capabilities.media == "image"
    assert handler_class("automatic-speech-recognition").capabilities.media == "audio"
    assert handler_class("document-question-answering").capabilities.media == "image"
    assert handler_class("question-answering").capabilities.media is None


def test_a_chunked_declaration_that_the_pipeline_contradicts_stops_setup(tiny_model, monkeypatch):
    from pipefleet.registry import handler_class
    from pipefleet.spec import parse_spec

    handler_type = handler_class("token-classification")
    monkeypatch.setattr(handler_type, "capabilities", Capabilities(display="entities", chunked=False))
    handler = handler_type(parse_spec({"task": "ner", "model": tiny_model("token-classification")}))
    with pytest.raises(FatalError, match="declares chunked=False, but its pipeline TokenClassificationPipeline"):
        handler.setup()


def test_rows_keep_their_own_parameters_and_the_engine_sorts_and_batches():
    handler = doubler()
    texts = ["abcd", "a", "abc", "ab"]
    outcomes = handler.predict(texts, [{"offset": 1}, {}, {"offset": 1}, {}])
    assert outcomes == [9, 2, 7, 4]
    # Rows with the same parameters share passes of at most batch_size, shortest first.
    assert sorted(handler.forwarded) == [[1, 2], [3, 4]]


class Meeting(Doubler):
    """Each pass waits at a barrier for as many passes as there are lanes: passes run one at a time
    would time out and fail, and the passes that run together are recorded together."""

    def setup(self) -> None:
        super().setup()
        self.threads: set[str] = set()

    def forward(self, batch: list[Any], params: Any) -> list[Any]:
        self.threads.add(threading.current_thread().name)
        self.meeting.wait()
        return super().forward(batch, params)


def meeting(parties: int) -> Meeting:
    from pipefleet.spec import Spec

    handler = Meeting(Spec.model_construct(task="test-doubler", params={}, batch_size=2, max_batch_tokens=None))
    handler.setup()
    handler.meeting = threading.Barrier(parties, timeout=10)
    handler.engine.lanes = parties
    return handler


def test_lanes_run_batches_at_once_and_keep_every_row_in_order():
    handler = meeting(parties=2)
    texts = ["abcd", "a", "abc", "ab"]
    assert handler.predict(texts) == [8, 2, 6, 4]
    assert sorted(handler.forwarded) == [[1, 2], [3, 4]]  # sorted by length, cut at batch_size, as in one lane
    assert len(handler.threads) == 2 and all(name.startswith("pipefleet-lane") for name in handler.threads)
    # Groups of their own (another forward parameter) share the lanes too: 3 passes of 3 groups at once.
    handler.meeting = threading.Barrier(3, timeout=10)
    handler.engine.lanes = 3  # after a call: the next call has three lanes, not the two made before
    assert handler.predict(["ab", "abc", "abcd"], [{"scale": 1}, {"scale": 2}, {"scale": 3}]) == [2, 6, 12]
    with pytest.raises(ValueError, match="lanes must be at least 1, got 0"):
        handler.engine.lanes = 0


def test_lanes_take_the_longest_batches_first_and_answer_in_order():
    # The passes that end a call are then the short, cheap ones, so the lanes finish it nearly together.
    handler = meeting(parties=2)
    texts = ["a" * n for n in (3, 8, 1, 6, 2, 5, 7, 4)]
    assert handler.predict(texts) == [2 * len(text) for text in texts]
    assert sorted(handler.forwarded[:2]) == [[5, 6], [7, 8]]  # the first two passes, run together
    assert sorted(handler.forwarded[2:]) == [[1, 2], [3, 4]]
    # Across groups too: the longest batches of a group that comes second (its own forward parameter) go first.
    handler.forwarded.clear()
    params = [{"scale": 1}] * 4 + [{"scale": 3}] * 4
    assert handler.predict(texts, params) == [n * p["scale"] for n, p in zip(map(len, texts), params)]
    # Lengths 3, 8, 1, 6 at scale 1 make [1, 3] and [6, 8]; lengths 2, 5, 7, 4 at scale 3 make [2, 4] and [5, 7].
    assert sorted(handler.forwarded[:2]) == [[5, 7], [6, 8]]
    assert sorted(handler.forwarded[2:]) == [[1, 3], [2, 4]]


def test_parameters_are_checked_once_per_call_and_immutable(monkeypatch):
    handler = doubler()
    checks = []
    original = Doubler.check_params.__func__
    monkeypatch.setattr(Doubler, "check_params", classmethod(lambda cls, p: checks.append(p) or original(cls, p)))
    handler.predict(["x"] * 50, [{"scale": 3}] * 50)
    assert len(checks) == 1  # one distinct parameter set: one check, however many rows carry it
    with pytest.raises(BadParameter, match="unknown parameter\\(s\\) for test-doubler: scael"):
        handler.predict(["x"], {"scael": 3})
    resolved = handler.resolve({"scale": 3, "offset": 2})  # as the endpoint does when it reads a request
    assert dict(resolved.forward) == {"scale": 3} and dict(resolved.postprocess) == {"offset": 2}
    with pytest.raises(TypeError):
        resolved.forward["scale"] = 4  # a stage cannot change what its neighbours get
    checked = len(checks)
    assert handler.predict(["xy"] * 3, [resolved] * 3) == [8, 8, 8]
    assert len(checks) == checked  # resolved parameters are not checked again


def test_a_forward_that_loses_rows_fails_those_rows_and_says_why():
    class Lossy(Doubler):
        def forward(self, batch, params):
            return super().forward(batch, params)[:-1] if len(batch) > 1 else super().forward(batch, params)

    from pipefleet.spec import Spec

    handler = Lossy(Spec.model_construct(task="test-doubler", params={}, batch_size=4, max_batch_tokens=None))
    handler.setup()
    # The short batch is retried row by row, so every row still gets its own outcome.
    assert handler.predict(["a", "bb", "ccc"]) == [2, 4, 6]


def test_own_parameters_reach_their_stages_and_never_the_pipeline(tiny_model, make_handler, monkeypatch):
    handler = make_handler("feature-extraction", tiny_model("feature-extraction"))
    seen: dict[str, dict] = {}
    pipe = handler.pipe
    for stage in ("preprocess", "forward", "postprocess"):
        method = getattr(pipe, stage)

        def recording(*args, _method=method, _stage=stage, **kwargs):
            seen.setdefault(_stage, {}).update(kwargs)
            return _method(*args, **kwargs)

        monkeypatch.setattr(pipe, stage, recording)
    handler.predict(TEXTS[:2], {"pooling": "none", "normalize": True, "truncation": True})
    assert seen["preprocess"] == {"truncation": True}  # the pipeline's own, routed by its _sanitize_parameters
    assert not {"pooling", "normalize", "max_length"} & {k for kwargs in seen.values() for k in kwargs}
    resolved = handler.resolve({"pooling": "mean", "normalize": False, "max_length": 8})
    assert dict(resolved.forward) == {"pooling": "mean", "normalize": False}
    assert resolved.preprocess["max_length"] == 8 and "normalize" not in resolved.preprocess


def test_a_pipeline_stage_that_writes_into_its_parameters_cannot_change_the_next_rows():
    from types import MappingProxyType

    from pipefleet import hf_stages

    class Scribbler:  # a pipeline whose preprocess writes into a dict it is given, as some do
        def preprocess(self, value, **kwargs):
            kwargs["generate_kwargs"]["scribbled"] = True
            return value

    params = MappingProxyType({"generate_kwargs": {"max_new_tokens": 3}})
    assert hf_stages.preprocess(Scribbler(), "first row", params) == ["first row"]
    assert params["generate_kwargs"] == {"max_new_tokens": 3}  # the next row gets what the call said


# ---- the code's shape ---------------------------------------------------------------------------

PRIVATE = re.compile(
    r"_sanitize_parameters|_preprocess_params|_forward_params|_postprocess_params|PipelineIterator|"
    r"pad_collate_fn|no_collate_fn|_build_translation_inputs|_get_feat_extract_output_lengths|"
    r"_prepare_generate_kwargs|ChunkPipeline"
)


def test_transformers_private_api_is_touched_in_one_module():
    # pipefleet/ported/ holds Pipeline subclasses ported from transformers 4.57: they define (and
    # subclass) those names themselves; every other use goes through pipefleet/hf_stages.py.
    users = sorted(
        str(path.relative_to(REPO))
        for folder in ("pipefleet", "jobs", "serve", "pipefleet_cli")
        for path in (REPO / folder).rglob("*.py")
        if PRIVATE.search(path.read_text()) and "ported" not in path.parts
    )
    assert users == ["pipefleet/hf_stages.py"]


def test_the_core_imports_neither_adapter():
    for path in (REPO / "pipefleet").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            roots = {name.split(".")[0] for name in names}
            assert not roots & {"jobs", "serve", "pipefleet_cli"}, f"{path} imports {roots}"


def test_task_modules_import_shared_helpers_from_common_not_from_each_other():
    # A task module may subclass another's handler (sentence-similarity extends feature-extraction).
    tasks = REPO / "pipefleet" / "tasks"
    for path in tasks.glob("*.py"):
        for module, names in re.findall(r"from pipefleet\.tasks\.(\w+) import ([\w, ]+)", path.read_text()):
            helpers = [name.strip() for name in names.split(",") if not name.strip().endswith("Handler")]
            assert module == "common" or not helpers, f"{path.name} imports {helpers} from {module}"


def test_serve_and_jobs_never_branch_on_task_names():
    from pipefleet.registry import tasks

    names = "|".join(re.escape(task) for task in tasks())
    pattern = re.compile(rf"""(==|!=|\bin)\s*\(?["'](?:{names})["']""")
    for folder in ("serve", "jobs"):
        for path in (REPO / folder).rglob("*.py"):
            assert not pattern.search(path.read_text()), f"{path} compares a task name"


def test_a_rows_error_in_postprocess_stays_in_its_row():
    class Picky(Doubler):
        def postprocess(self, outputs, value, params):
            if value == "bad":
                raise ValueError("cannot encode this one")
            return super().postprocess(outputs, value, params)

    from pipefleet.spec import Spec

    handler = Picky(Spec.model_construct(task="test-doubler", params={}, batch_size=4, max_batch_tokens=None))
    handler.setup()
    outcomes = handler.predict(["ok", "bad", "fine"])
    assert outcomes[0] == 4 and outcomes[2] == 8
    assert isinstance(outcomes[1], RowError) and outcomes[1].kind == "model_error"
    assert outcomes[1].message == "ValueError: cannot encode this one"
