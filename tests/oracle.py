"""Comparing pipefleet outputs with what ``transformers.pipeline`` returns (the oracle)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipefleet.outputs import to_jsonable

SCORE_TOLERANCE = 1e-4


def assert_matches(ours: Any, theirs: Any, path: str = "output") -> None:
    """Equal structure; labels, tokens and text exactly; floats within SCORE_TOLERANCE."""
    ours, theirs = to_jsonable(ours), to_jsonable(theirs)
    if isinstance(theirs, float) or isinstance(ours, float):
        assert isinstance(ours, (int, float)) and isinstance(theirs, (int, float)), f"{path}: {ours!r} vs {theirs!r}"
        assert math.isclose(ours, theirs, abs_tol=SCORE_TOLERANCE), f"{path}: {ours} vs {theirs}"
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and set(ours) == set(theirs), f"{path}: keys {ours!r} vs {theirs!r}"
        for key in theirs:
            assert_matches(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), f"{path}: {len(ours)} vs {len(theirs)} items"
        if theirs and all(isinstance(x, float) for x in theirs):
            np.testing.assert_allclose(ours, theirs, atol=SCORE_TOLERANCE, err_msg=path)
            return
        for index, (a, b) in enumerate(zip(ours, theirs)):
            assert_matches(a, b, f"{path}[{index}]")
    else:
        assert ours == theirs, f"{path}: {ours!r} vs {theirs!r}"
