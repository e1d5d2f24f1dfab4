"""A whole audit of a 64-unit MLP on 10,000 Adult records (privacy and fairness): each step's wall time and the
influence engine's share of it (issue 19).

What it runs: the adult-income example's member, non-member and test tables (``examples/adult_income/model``), a
seeded random subsample of 10,000 members, 2,500 non-members and 2,000 test records (non-members and test records
with a category the sampled members lack are left out first: the audit would refuse them), featurized as the
example's configuration says; ``examples.adult_income.model:build`` with ``width: 64`` trained here with
``auditkit.fit_model`` (l2 = 1e-3; not timed as part of the audit); then ``auditkit.audit(config, out)`` (report
and PDF included) with the example's fairness options and the privacy plugin with ``reference_models: 0`` (no
retraining: no ``train_fn``, so the retraining checks do not run either; they are not the engine's share),
influence ``method`` as given (default ``exact``), ``damping: auto``, seed 0, ``--threads`` torch threads.

The engine's share: every outermost call of the influence engine's public methods (``fit``, ``batch``,
``self_influence``, ``self_influence_of``, ``influence``, ``influence_on``, ``measure_gradient``,
``with_ridge``) and of ``EngineFactory.alternatives`` (the stability check's engines), attributed to the audit step
that made it (``runtime.steps``). Not a test.

    nice .venv/bin/python benchmarks/mlp_audit_profile.py [--threads 2] [--method exact] [--out benchmarks/results]
        [--weights FILE]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import auditkit as ak  # noqa: E402
from auditkit import engine_factory, runner  # noqa: E402
from auditkit.config import load_config  # noqa: E402
from auditkit.influence import InfluenceEngine  # noqa: E402
from auditkit.inputs import load_data  # noqa: E402

N_MEMBERS, N_NONMEMBERS, N_TEST, WIDTH, L2, SEED = 10_000, 2_500, 2_000, 64, 1e-3, 0
EXAMPLE = ROOT / "examples/adult_income"
ENGINE_METHODS = ["fit", "batch", "self_influence", "self_influence_of", "influence", "influence_on",
                  "measure_gradient", "with_ridge"]


class EngineClock:
    """Seconds spent in the engine's outermost calls, by the audit step running when they were made."""

    def __init__(self):
        self.step, self.depth, self.seconds, self.calls = "outside a step", 0, {}, {}

    def wrap(self, owner, name: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if self.depth:
                return original(*args, **kwargs)
            self.depth += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
                self.seconds[self.step] = self.seconds.get(self.step, 0.0) + time.perf_counter() - start
                self.calls.setdefault(self.step, []).append(name)

        setattr(owner, name, timed)

    def install(self) -> None:
        for name in ENGINE_METHODS:
            self.wrap(InfluenceEngine, name)
        self.wrap(engine_factory.EngineFactory, "alternatives")
        step = runner.Clock.step
        clock = self

        @contextmanager
        def named(self_, name):
            clock.step = name
            with step(self_, name):
                yield
            clock.step = "outside a step"

        runner.Clock.step = named


def sample(folder: Path, rng: np.random.Generator, categorical: list[str]) -> None:
    members = pd.read_csv(EXAMPLE / "model/train.csv")
    members = members.iloc[np.sort(rng.choice(len(members), N_MEMBERS, replace=False))]
    members.to_csv(folder / "train.csv", index=False)
    for name, count in (("holdout", N_NONMEMBERS), ("test", N_TEST)):
        table = pd.read_csv(EXAMPLE / f"model/{name}.csv")
        known = np.all([table[c].isin(set(members[c].dropna())) | table[c].isna() for c in categorical], axis=0)
        table = table[known]
        table = table.iloc[np.sort(rng.choice(len(table), min(count, len(table)), replace=False))]
        table.to_csv(folder / f"{name}.csv", index=False)


def configuration(folder: Path, n_features: int, method: str) -> Path:
    doc = yaml.safe_load((EXAMPLE / "audit.yaml").read_text())
    doc["model"].update(builder_args={"n_features": n_features, "width": WIDTH}, weights="weights.pt", l2=L2)
    doc["data"].update(train="train.csv", holdout="holdout.csv", test="test.csv")
    doc["audits"] = {"fairness": doc["audits"]["fairness"], "privacy": {"reference_models": 0}}
    doc["influence"] = {"method": method, "damping": "auto"}
    doc.pop("policy", None)
    doc["history"] = False
    path = folder / "audit.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--method", default="exact")
    parser.add_argument("--weights", default=None, help="file of the fitted model's weights: read when it exists "
                        "(the model fit, several minutes, is skipped), else written after the fit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = EngineClock()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        categorical = yaml.safe_load((EXAMPLE / "audit.yaml").read_text())["data"]["categorical"]
        sample(folder, np.random.default_rng(SEED), categorical)
        d = load_data(load_config(configuration(folder, 1, args.method))).splits["train"].X.shape[1]
        path = configuration(folder, d, args.method)
        train = load_data(load_config(path)).splits["train"]
        from examples.adult_income.model import build
        torch.manual_seed(SEED)
        model = build(d, WIDTH)
        if args.weights and Path(args.weights).exists():        # the fit of an earlier run, with its accounting
            kept = torch.load(args.weights)
            model.load_state_dict(kept["state"])
            fit, train_seconds = kept["fit"], kept["seconds"]
        else:
            t0 = time.perf_counter()
            fit = ak.fit_model(model, torch.tensor(train.X), torch.tensor(train.y), l2=L2)
            train_seconds = time.perf_counter() - t0
            if args.weights:
                torch.save({"state": model.state_dict(), "fit": fit, "seconds": train_seconds}, args.weights)
        torch.save(model.state_dict(), folder / "weights.pt")
        clock.install()
        load_start = list(os.getloadavg())
        t0 = time.perf_counter()
        result = ak.audit(path, folder / "report")
        seconds = time.perf_counter() - t0
        run = result.run.model_dump(mode="json")           # the typed run document, as JSON
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    steps = run["runtime"]["steps"]
    engine_total = sum(clock.seconds.values())
    solver = run["influence"].get("solver") if isinstance(run["influence"].get("solver"), dict) else {}
    report = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "git_commit": commit,
              "torch": torch.__version__, "threads": args.threads, "load_average_before": load_start,
              "load_average_after": list(os.getloadavg()), "method": args.method,
              "records": {"members": N_MEMBERS, "non_members": N_NONMEMBERS, "test": N_TEST, "features": int(d),
                          "parameters": int(sum(p.numel() for p in model.parameters()))},
              "model_fit": {"seconds": train_seconds, "converged": bool(fit["converged"]),
                            "grad_norm": float(fit["grad_norm"])},
              "audit_seconds": seconds, "engine_seconds": engine_total, "engine_by_step": clock.seconds,
              "engine_calls_by_step": {k: sorted(set(v)) for k, v in clock.calls.items()}, "steps": steps,
              "fitting": run["influence"].get("fitting"), "solver": solver}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mlp_audit_profile.json").write_text(json.dumps(report, indent=1, default=str))
    load = ", ".join(f"{x:.1f}" for x in report["load_average_after"])
    lines = ["# A whole audit of a 64-unit MLP on 10,000 Adult records: where the seconds go (issue 19)", "",
             f"Written by `benchmarks/mlp_audit_profile.py` on {report['date']} (commit {commit}, torch "
             f"{report['torch']}, {args.threads} threads, 2 CPUs **shared with other engineers' work**: load average "
             f"(1, 5, 15 min) before {', '.join(f'{x:.1f}' for x in load_start)}, after {load}). Design: the module "
             "docstring.", "",
             f"{N_MEMBERS} members, {N_NONMEMBERS} non-members, {N_TEST} test records of the adult-income data, {d} "
             f"features, MLP {d} → {WIDTH} tanh → 2 ({report['records']['parameters']} parameters), l2 = {L2:g}; "
             f"fairness (the example's options) and privacy (`reference_models: 0`), influence `method: "
             f"{args.method}`, `damping: auto`; no `train_fn`.", "",
             f"**Whole audit (`auditkit.audit`, report and PDF included): {seconds:.1f} s; the influence engine's "
             f"share: {engine_total:.1f} s.**", "", "| step | seconds | of which the engine |", "|---|---|---|"]
    lines += [f"| {s['name']} | {s['seconds']:.1f} | {clock.seconds.get(s['name'], 0.0):.1f} |" for s in steps]
    other = {k: v for k, v in clock.seconds.items() if k not in {s["name"] for s in steps}}
    lines += [f"| ({k}) | – | {v:.1f} |" for k, v in other.items()]
    lines += ["", f"Model fit before the audit (not part of it): {train_seconds:.1f} s."]
    (out / "mlp_audit_profile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
