"""The command line: parse → run_audit → write → exit code.

::

    auditkit run audit.yaml --out reports/2026-11-28   run the audit, write the report and outputs
    auditkit run audit.yaml --out DIR --scheduler tcp://host:8786   ... with the influence work on a Dask cluster
    auditkit validate audit.yaml                        check the configuration, data and model; compute nothing
    auditkit schema                                     print the JSON Schema of audit.yaml
    auditkit render reports/2026-11-28                  re-render a saved run (no recomputation)
    auditkit policies                                   list the built-in policies
    auditkit --version                                  print ``auditkit <version>``

Every command takes, before or after its name: ``-v``/``--verbose`` (debug lines; ``-vv`` also other libraries'),
``--quiet`` (errors only: no progress, no summary) and ``--json`` (the summary as one JSON object on stdout,
nothing else there; on an error, ``{"error": ..., "exit_code": ...}`` there too). Messages and progress go to
stderr through :mod:`logging` (configured in :mod:`auditkit.console`); ``NO_COLOR`` turns colour off.

Exit codes: 0 passed (warnings allowed), 1 a policy rule failed (or a required check lacked data),
2 invalid input or configuration, 3 a failure while running, 130 / 143 interrupted by SIGINT (Ctrl-C) /
SIGTERM (cleanly: a report is put in place whole with its history row, or not at all).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import platform
import shlex
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch

from . import __version__, interrupts
from .console import colour_allowed, coloured, console_logging, verbosity
from .errors import AuditkitError, BackendError, InputError, OutputError
from .rundoc import load_run
from .summary import (
    ErrorSummary,
    ModelId,
    PolicyList,
    RenderSummary,
    RunSummary,
    TrainingFit,
    ValidateSummary,
    render_summary,
    run_summary,
)

log = logging.getLogger(__name__)

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_RUNTIME = 0, 1, 2, 3
STATUS_EXIT = {"pass": EXIT_PASS, "pass_with_warnings": EXIT_PASS, "fail": EXIT_FAIL, "incomplete": EXIT_FAIL}


class _Parser(argparse.ArgumentParser):
    """argparse's parser; with ``json_errors`` (``--json`` was given) a usage error also prints
    ``{"error": ..., "exit_code": 2}`` on stdout before argparse's usage and message on stderr."""

    def __init__(self, *args, json_errors: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.json_errors = json_errors

    def error(self, message: str):
        if self.json_errors:
            print(ErrorSummary(error=message, exit_code=EXIT_INPUT).model_dump_json(), flush=True)
        super().error(message)


def _common_options(parser: argparse.ArgumentParser, *, after: bool) -> None:
    """-v, --quiet and --json; given ``after`` the command's name, their defaults are suppressed so that they do
    not overwrite the same options given before it."""
    def default(value):
        return argparse.SUPPRESS if after else value
    parser.add_argument("-v", "--verbose", action="count", default=default(0),
                        help="show debug lines (-vv: also other libraries' debug lines)")
    parser.add_argument("--quiet", action="store_true", default=default(False),
                        help="only errors: no progress, no summary (the --json object is still printed)")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="print the summary as one JSON object on stdout, nothing else there (on an error: "
                             '{"error": ..., "exit_code": ...})')


def _parser(*, json_errors: bool = False) -> argparse.ArgumentParser:
    parser = _Parser(prog="auditkit", json_errors=json_errors, description="Audit a trained PyTorch model for "
                     "fairness and privacy with influence functions, and write a regulator-facing report.")
    parser.add_argument("--version", action="version", version=f"auditkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected failures")
    _common_options(parser, after=False)
    sub = parser.add_subparsers(dest="command", required=True,
                                parser_class=functools.partial(_Parser, json_errors=json_errors))
    run = sub.add_parser("run", help="run an audit and write its report")
    run.add_argument("config", help="audit.yaml")
    run.add_argument("--out", required=True, help="output folder (created; an earlier run's folder is replaced)")
    run.add_argument("--trigger", choices=["manual", "schedule", "ci"], default=None,
                     help="what started the run (default: ci when $CI is set, else manual)")
    run.add_argument("--templates", default=None, help="folder of report templates overriding the built-in ones")
    run.add_argument("--threads", type=int, default=1, metavar="N",
                     help="torch threads (default 1: fastest for tabular models, whose many small operations "
                          "spend more time synchronising threads than computing; raise it for large models)")
    run.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="run the influence engine's chunk work on the Dask cluster whose scheduler is at ADDRESS "
                          "(e.g. tcp://10.0.0.5:8786; overrides backend in audit.yaml; needs auditkit[dask])")
    validate = sub.add_parser("validate", help="check a configuration, read its data and build its model, "
                              "without auditing")
    validate.add_argument("config")
    schema = sub.add_parser("schema", help="print the JSON Schema of audit.yaml (or, with --run, of run.json)")
    schema.add_argument("--run", action="store_true",
                        help="the JSON Schema of the run document (run.json, schema auditkit.run/1) instead")
    render = sub.add_parser("render", help="re-render the report of a saved run")
    render.add_argument("run_dir")
    render.add_argument("--templates", default=None)
    policies = sub.add_parser("policies", help="list the built-in policies")
    for command in (run, validate, schema, render, policies):
        _common_options(command, after=True)
    return parser


def _run(args) -> tuple[int, RunSummary]:
    from .runner import audit

    started = time.perf_counter()
    command = "auditkit run " + " ".join(shlex.quote(a) for a in [args.config, "--out", args.out])
    log.debug("torch threads: %d", args.threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = audit(args.config, args.out, trigger=args.trigger or ("ci" if os.environ.get("CI") else "manual"),
                       templates=args.templates, command=command, threads=args.threads, scheduler=args.scheduler)
    for w in caught:
        if issubclass(w.category, UserWarning):
            log.warning((str(w.message).splitlines() or [""])[0])
    code = STATUS_EXIT[result.status]
    signum = interrupts.pending()
    if signum is not None:
        log.error("auditkit: %s arrived while the report was being put in place: the run completed, its report is "
                  "in %s", signal.Signals(signum).name, result.paths["report.pdf"].parent)
        code = 128 + signum
    return code, run_summary(result.run, result.paths, exit_code=code, seconds=time.perf_counter() - started)


def _validate(args) -> tuple[int, ValidateSummary]:
    """Check the configuration and where it writes (history store, staging folder), then read the data, build the
    model and check that its weights are a minimum of the stated objective on the featurized training records, as a
    run would (no influence is computed)."""
    from .config import load_config
    from .inputs import check_stationarity, load_data, load_model
    from .runner import check_config, check_destinations
    from .seeds import derived_seed
    config = load_config(args.config)
    policy = check_config(config)
    check_destinations(config, None)
    loaded = load_data(config)
    splits = loaded.splits
    model = load_model(config, splits)
    fit = check_stationarity(config.model, model, splits["train"], seed=derived_seed(config.seed, "stationarity"),
                             featurizer=loaded.featurizer)
    return EXIT_PASS, ValidateSummary(config=args.config, model=ModelId(name=config.model.name,
                                                                         version=config.model.version),
                                      records={name: split.n for name, split in splits.items()},
                                      audits=list(config.audits), policy=policy.name if policy else None,
                                      featurizer=str(loaded.featurizer), training_fit=TrainingFit(**fit))


def _render(args) -> tuple[int, RenderSummary]:
    from .writer import rerender
    paths = rerender(Path(args.run_dir), templates=Path(args.templates) if args.templates else None)
    return EXIT_PASS, render_summary(load_run(paths["run.json"]), paths)


COMMANDS = {"run": _run, "validate": _validate, "render": _render}


def _print_summary(args, summary, stdout) -> None:
    """The command's summary on ``stdout``: one JSON object with --json, else lines for people (none with
    --quiet); the banner of a run in colour on a terminal that allows it."""
    if args.json:
        print(summary.model_dump_json(), file=stdout, flush=True)
    elif not args.quiet:
        colour = colour_allowed(stdout)
        print("\n".join(summary.lines(banner=lambda text, status: coloured(text, status, colour=colour))),
              file=stdout, flush=True)


def _fail(args, code: int, line: str) -> int:
    """``line`` (``auditkit: ...``) logged as an error (stderr) and, with --json, ``{"error", "exit_code"}`` on
    stdout; returns ``code``."""
    log.error("%s", line)
    if args.json:
        message = line.removeprefix("auditkit: error: ").removeprefix("auditkit: ")
        print(ErrorSummary(error=message, exit_code=code).model_dump_json(), flush=True)
    return code


def _what_was_written() -> str:
    """What this command left behind, for a message after a failure or a signal (never a false "nothing")."""
    where = interrupts.written()
    if where is None:
        return "no report or history row was written"
    return f"the report was written to {str(where)!r} (with its history row, if any) before that"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = _parser(json_errors="--json" in argv)
    args = parser.parse_args(argv)
    if args.verbose and args.quiet:
        parser.error("-v/--verbose and --quiet cannot be combined: give one of them")
    with console_logging(verbosity(args.verbose, args.quiet)):
        log.debug("auditkit %s (Python %s, torch %s): auditkit %s", __version__, platform.python_version(),
                  torch.__version__, shlex.join(argv))
        return _command(args)


def _command(args) -> int:
    """Run the parsed command: its exit code; an error becomes one line on stderr (and, with --json, the JSON
    object on stdout)."""
    stdout = sys.stdout
    interrupts.install()
    try:
        if args.command == "schema":
            from .config import json_schema
            from .rundoc import run_json_schema
            print(json.dumps(run_json_schema() if args.run else json_schema(), indent=2, ensure_ascii=False))
            return EXIT_PASS
        if args.command == "policies":
            from .policy import builtin_policies
            names = builtin_policies()
            print(PolicyList(policies=names).model_dump_json() if args.json else "\n".join(names))
            return EXIT_PASS
        # with --json, whatever else is printed while the command runs (a model builder's print) goes to stderr
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            code, summary = COMMANDS[args.command](args)
        _print_summary(args, summary, stdout)
        return code
    except InputError as exc:
        return _fail(args, EXIT_INPUT, f"auditkit: error: {exc}")
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        return _fail(args, 128 + signum, f"auditkit: interrupted ({signal.Signals(signum).name}); "
                     f"{_what_was_written()}")
    except (OutputError, BackendError) as exc:     # their messages say what was written
        if args.debug:
            traceback.print_exc()
        return _fail(args, EXIT_RUNTIME, f"auditkit: runtime failure: {exc} (rerun with --debug for details)")
    except (AuditkitError, Exception) as exc:  # noqa: BLE001 - the last line of defence: one line, exit 3
        if args.debug:
            traceback.print_exc()
        first = (str(exc).splitlines() or [""])[0][:300]
        return _fail(args, EXIT_RUNTIME, f"auditkit: runtime failure: {type(exc).__name__}: {first} "
                     f"({_what_was_written()}; rerun with --debug for details)")


if __name__ == "__main__":
    sys.exit(main())
