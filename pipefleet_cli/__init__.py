"""The ``pipefleet`` command: tasks, predict, annotate, serve, demo.

The composition root, above the core (``pipefleet``) and both adapters (``jobs``, ``serve``):
it reaches an adapter only when its subcommand runs, and nothing imports it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pipefleet.errors import FatalError


def _tasks(args: argparse.Namespace) -> int:
    from pipefleet.registry import tasks

    for task, aliases in tasks().items():
        print(f"{task}\t{', '.join(aliases)}" if aliases else task)
    return 0


def _read_jsonl(path: Path) -> list:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise FatalError(f"{path}:{number}: not valid JSON: {exc}") from None
    return rows


def _predict(args: argparse.Namespace) -> int:
    """Run a spec's handler in-process over a small JSONL file; print one JSON line per row."""
    from pipefleet.outputs import split_outcomes, to_jsonable
    from pipefleet.registry import handler_class
    from pipefleet.rows import column_map, input_from_row
    from pipefleet.spec import load_spec

    spec = load_spec(args.spec)
    handler = handler_class(spec.task)(spec)
    columns = column_map(handler, spec.input.columns)
    rows = _read_jsonl(Path(args.input))
    # A line may be a bare input (a string) or a row of named columns.
    inputs = [input_from_row(r, columns) if isinstance(r, dict) else r for r in rows]
    handler.setup()
    values, errors = split_outcomes(handler.predict(inputs))
    column = spec.output.column or handler.output_column
    for row, value, error in zip(rows, values, errors):
        record = dict(row) if isinstance(row, dict) else {"input": row}
        record.update({column: to_jsonable(value), "error": error})
        print(json.dumps(record, ensure_ascii=False))
    return 0


def _annotate(args: argparse.Namespace) -> int:
    from jobs.annotate import main as annotate_main

    return annotate_main(args.rest)


def _serve(args: argparse.Namespace) -> int:
    from serve.cli import main as serve_main

    return serve_main(args.rest)


def _demo(args: argparse.Namespace) -> int:
    from serve.cli import main as serve_main

    return serve_main(args.rest, demo=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipefleet", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tasks", help="list the supported tasks with their aliases").set_defaults(run=_tasks)
    predict = commands.add_parser("predict", help="run a spec in-process over a small JSONL file")
    predict.add_argument("spec")
    predict.add_argument("--input", required=True, help="JSONL: one input (a string) or one row (an object) per line")
    predict.set_defaults(run=_predict)
    for name, (_, text) in ADAPTER_COMMANDS.items():
        commands.add_parser(name, help=text, add_help=False)  # listed here; their own parsers take their arguments
    return parser


# Subcommands whose arguments (-h included) belong to the adapter's own parser.
ADAPTER_COMMANDS = {
    "annotate": (_annotate, "run the annotation job (see: pipefleet annotate -h)"),
    "serve": (_serve, "start the online endpoint (see: pipefleet serve -h)"),
    "demo": (_demo, "start the endpoint with a demo page for every route (see: pipefleet demo -h)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pipefleet`` console script (also ``python -m pipefleet_cli``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ADAPTER_COMMANDS:
        run, _ = ADAPTER_COMMANDS[argv[0]]
        args = argparse.Namespace(rest=argv[1:])
    else:
        args = build_parser().parse_args(argv)
        run = args.run
    try:
        return run(args)
    except FatalError as exc:
        print(f"pipefleet: error: {exc}", file=sys.stderr)
        return 2
