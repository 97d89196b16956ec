"""Rows of a table (the job's corpus, ``pipefleet predict``'s lines) as a handler's inputs.

A spec's ``input.columns`` maps the handler's declared input names to columns; one input is
passed bare, several as ``{name: value}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipefleet.errors import BadInput

if TYPE_CHECKING:
    from pipefleet.handler import TaskHandler


def column_map(handler: type["TaskHandler"], columns: Mapping[str, str]) -> dict[str, str]:
    """Handler input name -> column, defaulting to the main input read from a column of the same name."""
    names = handler.input_names()
    unknown = sorted(set(columns) - set(names))
    if unknown:
        raise BadInput(
            f"input.columns: {handler.task} has no input named {', '.join(unknown)}; its inputs are {', '.join(names)}"
        )
    return dict(columns) or {names[0]: names[0]}


def input_from_row(row: Mapping[str, Any], columns: Mapping[str, str]) -> Any:
    """The raw input of one row: the mapped column's value, or a dict when several inputs are mapped."""
    if len(columns) == 1:
        return row.get(next(iter(columns.values())))
    return {name: row.get(column) for name, column in columns.items()}
