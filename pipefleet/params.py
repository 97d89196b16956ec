"""Checks for task parameters, so a caller's wrong type or value is a clear 4xx, not a model fault.

Each handler maps its parameter names to one of these checks; a check returns nothing or
raises :class:`BadParameter` naming the parameter and what it takes. Each check also carries
the JSON schema of what it accepts (``check.schema``), from which the endpoint's OpenAPI
document describes the parameters.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipefleet.errors import BadParameter

Params = Mapping[str, Any]
Check = Callable[[str, Any], Any]  # (name, value) -> the value, normalised; raises BadParameter

PIPELINE = "pipeline"  # the pipeline's own parameter: the pipeline says which stage takes it
STAGES = ("preprocess", "forward", "postprocess")


@dataclass(frozen=True)
class Param:
    """A task parameter: the check of its values, and the stages it goes to.

    ``stages`` is ``(PIPELINE,)`` for a parameter of the ``transformers`` pipeline, which routes it;
    a handler's own parameter (``pooling``, ``prompt``) names the stages that read it, and the
    engine hands it to them and never to the pipeline.
    """

    check: Check
    stages: tuple[str, ...] = (PIPELINE,)

    @property
    def own(self) -> bool:
        """Whether the handler, not the pipeline, reads this parameter."""
        return PIPELINE not in self.stages


def staged(check: Check, *stages: str) -> Param:
    """A handler's own parameter, read by ``stages`` (of preprocess, forward, postprocess)."""
    unknown = sorted(set(stages) - set(STAGES))
    if not stages or unknown:
        raise ValueError(f"staged(): stages are {', '.join(STAGES)}, got {', '.join(stages) or 'none'}")
    return Param(check, tuple(stages))


def as_params(declared: Mapping[str, Check | Param]) -> dict[str, Param]:
    """A handler's declared parameters with every bare check made a pipeline :class:`Param`."""
    return {name: value if isinstance(value, Param) else Param(value) for name, value in declared.items()}


def _accepting(
    accepts: Callable[[Any], bool], wants: str, schema: dict[str, Any], normal: Callable[[Any], Any] | None = None
) -> Check:
    def check(name: str, value: Any) -> Any:
        if not accepts(value):
            raise BadParameter(f"parameter {name}: {wants}, got {value!r:.60}")
        return normal(value) if normal is not None else value

    check.schema = {**schema, "description": wants}  # type: ignore[attr-defined]
    return check


def schema_of(param: Param | Check) -> dict[str, Any]:
    """The JSON schema of what a parameter accepts (an empty schema for a check without one)."""
    check = param.check if isinstance(param, Param) else param
    return dict(getattr(check, "schema", {}))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    """An int, or a float with no fraction: JSON clients (and JavaScript) may send 3 as 3.0."""
    return _is_number(value) and float(value).is_integer()


def integer(minimum: int = 0, nullable: bool = False) -> Check:
    wants = f"an integer >= {minimum}" + (" or null" if nullable else "")
    schema = {"type": ["integer", "null"] if nullable else "integer", "minimum": minimum}
    return _accepting(
        lambda v: (v is None and nullable) or (_is_integer(v) and v >= minimum),
        wants,
        schema,
        normal=lambda v: v if v is None else int(v),
    )


def number(minimum: float = 0.0) -> Check:
    return _accepting(
        lambda v: _is_number(v) and v >= minimum, f"a number >= {minimum:g}", {"type": "number", "minimum": minimum}
    )


def boolean() -> Check:
    return _accepting(lambda v: isinstance(v, bool), "true or false", {"type": "boolean"})


def choice(*options: str) -> Check:
    return _accepting(
        lambda v: isinstance(v, str) and v.lower() in options, f"one of {', '.join(options)}", {"enum": list(options)}
    )


def flag_or_choice(*options: str) -> Check:
    """true, false, or one of ``options`` (``return_timestamps``: true, "char" or "word")."""
    wants = f"true, false or one of {', '.join(options)}"
    schema = {"anyOf": [{"type": "boolean"}, {"enum": list(options)}]}
    return _accepting(lambda v: isinstance(v, bool) or (isinstance(v, str) and v in options), wants, schema)


def number_or_pair(minimum: float = 0.0) -> Check:
    """A number, or a list of two (``stride_length_s``: the same stride on both sides, or left and right)."""
    number_schema = {"type": "number", "minimum": minimum}
    return _accepting(
        lambda v: (
            (_is_number(v) and v >= minimum)
            or (isinstance(v, list) and len(v) == 2 and all(_is_number(x) and x >= minimum for x in v))
        ),
        f"a number >= {minimum:g} or a list of two",
        {"anyOf": [number_schema, {"type": "array", "items": number_schema, "minItems": 2, "maxItems": 2}]},
    )


def text() -> Check:
    return _accepting(lambda v: isinstance(v, str), "a string", {"type": "string"})


def texts() -> Check:
    """A string or a list of strings (labels, targets, stop sequences)."""
    return _accepting(
        lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
        "a string or a list of strings",
        {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    )


def mapping() -> Check:
    return _accepting(lambda v: isinstance(v, dict), "an object", {"type": "object"})


def check_values(declared: Mapping[str, Param], params: Mapping[str, Any]) -> dict[str, Any]:
    """Each given parameter's value once its check passed, as the check normalises it (``3.0`` -> ``3``)."""
    return {name: declared[name].check(name, value) for name, value in params.items()}


def params_key(params: Mapping[str, Any]) -> str:
    """A hashable key under which equal parameter sets meet (rows that may share a forward pass)."""
    return json.dumps(dict(params), sort_keys=True, default=repr)


@dataclass(frozen=True)
class StageParams:
    """One call's parameters, checked and split by stage; immutable, so no row can change another's."""

    call: Params  # the spec's parameters overridden by the call's, as given
    preprocess: Params
    forward: Params
    postprocess: Params

    @functools.cached_property
    def forward_key(self) -> str:
        """Rows whose parameters are equal may share a forward pass.

        All of them, not the forward stage's alone: a stage's parameters can shape what a model input
        carries for its whole batch (a translation's target language picks the batch's first token)."""
        return params_key(self.call)
