"""The command line: parse → run_audit → write → exit code.

::

    auditkit run audit.yaml --out reports/2026-11-28   run the audit, write the report and outputs
    auditkit run audit.yaml --out DIR --scheduler tcp://host:8786   ... with the influence work on a Dask cluster
    auditkit validate audit.yaml                        check the configuration, data and model; compute nothing
    auditkit schema                                     print the JSON Schema of audit.yaml
    auditkit render reports/2026-11-28                  re-render a saved run (no recomputation)
    auditkit policies                                   list the built-in policies

Exit codes: 0 passed (warnings allowed), 1 a policy rule failed (or a required check lacked data),
2 invalid input or configuration, 3 a failure while running.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
import warnings
from pathlib import Path

from .errors import AuditkitError, InputError

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_RUNTIME = 0, 1, 2, 3
STATUS_EXIT = {"pass": EXIT_PASS, "pass_with_warnings": EXIT_PASS, "fail": EXIT_FAIL, "incomplete": EXIT_FAIL}
BANNER = {"pass": "PASS", "pass_with_warnings": "PASS WITH WARNINGS", "fail": "FAIL", "incomplete": "INCOMPLETE"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditkit", description="Audit a trained PyTorch model for fairness "
                                     "and privacy with influence functions, and write a regulator-facing report.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected failures")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an audit and write its report")
    run.add_argument("config", help="audit.yaml")
    run.add_argument("--out", required=True, help="output folder (created; an earlier run's folder is replaced)")
    run.add_argument("--quiet", action="store_true", help="no progress, only errors")
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
    sub.add_parser("schema", help="print the JSON Schema of audit.yaml")
    render = sub.add_parser("render", help="re-render the report of a saved run")
    render.add_argument("run_dir")
    render.add_argument("--templates", default=None)
    sub.add_parser("policies", help="list the built-in policies")
    return parser


def _summary(run: dict, paths: dict, seconds: float) -> list[str]:
    checks = run.get("checks", [])
    counts = {s: sum(c["status"] == s for c in checks) for s in ("pass", "warn", "fail", "insufficient_data")}
    lines = [f"auditkit {run['report_id']}: {BANNER[run['status']]}",
             f"  model {run['model']['name']} {run['model']['version']}; policy "
             f"{(run.get('policy') or {}).get('name', 'none')}: {counts['pass']} passed, {counts['warn']} warned, "
             f"{counts['fail']} failed, {counts['insufficient_data']} without enough data"]
    for c in checks:
        if c["status"] in ("fail", "warn"):
            scope = "/".join(str(s) for s in (c.get("attribute"), c.get("group")) if s)
            value = "n/a" if c.get("value") is None else f"{c['value']:.3g}"
            lines.append(f"  {c['status'].upper():4s} {c['rule']} [{scope}]: {value} (bound {c['bound']})")
    privacy = run.get("privacy")
    if privacy:
        lines.append(f"  privacy: {privacy['n_flagged']} training record(s) flagged at a false-alarm budget of "
                     f"{privacy['budget']:g}")
    quality = run.get("data_quality")
    if quality:
        lines.append(f"  data quality: {quality['worth_inspecting']} record(s) worth inspecting")
    private = str(paths["flagged_records.csv"]) + (f", all records' scores: {paths['record_scores.csv']}"
                                                  if "record_scores.csv" in paths else "")
    lines.append(f"  report: {paths['report.pdf']}  (flagged records, private: {private})")
    lines.append(f"  {seconds:.1f} s")
    return lines


def _run(args) -> int:
    from .runner import audit

    quiet = args.quiet
    say = None if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    started = time.perf_counter()
    command = "auditkit run " + " ".join(shlex.quote(a) for a in [args.config, "--out", args.out])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = audit(args.config, args.out, trigger=args.trigger or ("ci" if os.environ.get("CI") else "manual"),
                       templates=args.templates, command=command, progress=say, threads=args.threads,
                       scheduler=args.scheduler)
    for w in caught:
        if issubclass(w.category, UserWarning) and say is not None:
            say(f"warning: {str(w.message).splitlines()[0]}")
    if not quiet:
        print("\n".join(_summary(result.run, result.paths, time.perf_counter() - started)))
    return STATUS_EXIT[result.status]


def _validate(args) -> int:
    """Check the configuration, then read the data, build the model and check that its weights are a minimum of
    the stated objective on the featurized training records, as a run would (no influence is computed)."""
    from .config import load_config
    from .inputs import check_stationarity, load_data, load_model
    from .runner import check_config
    config = load_config(args.config)
    policy = check_config(config)
    loaded = load_data(config)
    splits = loaded.splits
    model = load_model(config, splits)
    fit = check_stationarity(config, model, splits["train"], featurizer=loaded.featurizer)
    counts = ", ".join(f"{name} {split.n}" for name, split in splits.items())
    accuracy = "" if fit["accuracy"] is None else f", accuracy {fit['accuracy']:.4g}"
    verdict = "" if fit["stationary"] else f" (above {fit['threshold']:g}: allowed by model.allow_non_stationary)"
    print(f"{args.config}: valid (model {config.model.name} {config.model.version}; records {counts}; audits "
          f"{', '.join(config.audits) or 'none'}; policy {policy.name if policy else 'none'})")
    print(f"  featurizer: {loaded.featurizer}")
    print(f"  training records as the audit sees them: loss {fit['loss']:.4g}{accuracy}; gradient norm of the "
          f"objective {fit['grad_norm']:.3g}, {fit['relative']:.3g} of its size with shuffled labels{verdict}")
    return EXIT_PASS


def _render(args) -> int:
    from .writer import rerender
    paths = rerender(Path(args.run_dir), templates=Path(args.templates) if args.templates else None)
    print(f"re-rendered {paths['report.pdf']}")
    return EXIT_PASS


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "schema":
            from .config import json_schema
            print(json.dumps(json_schema(), indent=2))
            return EXIT_PASS
        if args.command == "policies":
            from .policy import builtin_policies
            print("\n".join(builtin_policies()))
            return EXIT_PASS
        return {"run": _run, "validate": _validate, "render": _render}[args.command](args)
    except InputError as exc:
        print(f"auditkit: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("auditkit: interrupted; nothing was written", file=sys.stderr)
        return 130
    except (AuditkitError, Exception) as exc:  # noqa: BLE001 - the last line of defence: one line, exit 3
        if args.debug:
            traceback.print_exc()
        first = (str(exc).splitlines() or [""])[0]
        print(f"auditkit: runtime failure: {type(exc).__name__}: {first} (nothing was written; rerun with "
              "--debug for details)", file=sys.stderr)
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
