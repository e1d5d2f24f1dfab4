"""Where the influence engine's seconds go in an audit of a 64-unit MLP on 10,000 records (issue 19), per method.

What it measures
----------------
Adult (``benchmarks/peers/prepare.py`` featurisation, 91 features), the first 10,000 training records and 2,000
held-out records (the test records of adult.test repeated are not used: the held-out set is the next 2,000
training records, as non-members), an MLP 91 → 64 tanh → 2 (p = 6,018) trained with ``auditkit.fit_model``
(l2 = 1e-3). For ``exact``, ``ekfac``, ``pcg``, in one process with ``--threads`` threads, the engine's pieces an
audit with the privacy and fairness plugins calls, as it calls them: ``fit`` (for exact: forming the dense
Hessian, timed apart, and its Cholesky factor); ``self_influence(leverage=True)`` of every member (privacy,
data quality); ``self_influence_of(…, leverage=True)`` of the held-out records (privacy); ``influence_on`` one
group measurement (fairness: the loss gap between two halves of the held-out set); and the **stability check's
recomputations** (``--stability``, for exact): the engines ``EngineFactory.alternatives`` makes (the ridge ×0.1
and ×10 through ``InfluenceEngine.with_ridge``, and the second solver), each answering the measurement and
every member's leverage self-influence in one pass (``engine.batch``), as ``auditkit.audits.stability`` asks.
Only the engine's share: the plugins, bootstrap and report are not timed. ``auto``'s choice for this model and
its reason are printed. Not a test.

Run: ``.venv/bin/python benchmarks/mlp_engine_profile.py --work DIR [--out DIR] [--threads 2] [--stability]``
(DIR as written by ``benchmarks/peers/prepare.py``; the trained model is kept there for reruns); writes
``mlp_engine_profile.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import auditkit  # noqa: E402
from auditkit.engine_factory import EngineFactory, EngineSettings  # noqa: E402
from auditkit.influence import InfluenceEngine  # noqa: E402
from auditkit.influence.hessian import HessianOperator  # noqa: E402
from auditkit.influence.solvers.auto import AutoSolver  # noqa: E402

L2 = 1e-3
N, HOLD = 10_000, 2_000
# (method, options, per-record parts timed): pcg's per-record self-influence (one block solve per 256 records, 40
# solves over all 10,000 members) would take hours here, so only its fit and the measurement are timed
METHODS = [("exact", {}, True), ("ekfac", {}, True), ("pcg", {}, False)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--methods", default=",".join(m for m, _, _ in METHODS))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine has 2 cores)")
    ap.add_argument("--stability", action="store_true", help="also time the stability check's recomputations "
                    "(for the methods whose per-record parts are timed)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    dense_s = []
    dense = HessianOperator.dense

    def timed_dense(self):
        t = time.perf_counter()
        out = dense(self)
        dense_s.append((time.perf_counter() - t, self.dense_method))
        return out

    HessianOperator.dense = timed_dense
    d = np.load(a.work / "adult.npz")
    X, y = torch.as_tensor(d["X"][:N]), torch.as_tensor(d["y"][:N])
    Xh, yh = torch.as_tensor(d["X"][N:N + HOLD]), torch.as_tensor(d["y"][N:N + HOLD])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(X.shape[1], 64), nn.Tanh(), nn.Linear(64, 2)).double()
    cache = a.work / "mlp_engine_profile_model.pt"         # the trained model, kept for reruns (not timed here)
    if cache.exists():
        saved = torch.load(cache)
        model.load_state_dict(saved["state"])
        info, train_s = saved["info"], saved["train_s"]
    else:
        t0 = time.perf_counter()
        info = auditkit.fit_model(model, X, y, l2=L2)
        train_s = time.perf_counter() - t0
        torch.save({"state": model.state_dict(), "train_s": train_s,
                    "info": {k: info[k] for k in ("iterations", "grad_norm", "converged")}}, cache)
    half = torch.arange(HOLD) < HOLD // 2

    def gap(outputs, targets):
        losses = nn.functional.cross_entropy(outputs, targets, reduction="none")
        return losses[half].mean() - losses[~half].mean()

    rows, ref, auto_reason = [], None, None
    for method, opts, per_record in METHODS:
        if method not in a.methods.split(","):
            continue
        dense_s.clear()
        t, c = [time.perf_counter()], [time.process_time()]
        eng = InfluenceEngine(model, "cross_entropy", l2=L2, method=method, **opts).fit(X, y)
        t.append(time.perf_counter())
        c.append(time.process_time())
        s = eng.self_influence(leverage=True) if per_record else None
        t.append(time.perf_counter())
        c.append(time.process_time())
        h = eng.self_influence_of(Xh, yh, leverage=True) if per_record else None
        t.append(time.perf_counter())
        c.append(time.process_time())
        e = eng.influence_on(gap, Xh, yh)
        t.append(time.perf_counter())
        c.append(time.process_time())
        stability = {}
        if a.stability and method == "exact":      # the audit profiled here is an exact one
            factory = EngineFactory(model, EngineSettings(loss="cross_entropy", l2=L2, dtype="float64", method=method))
            start, cpu = time.perf_counter(), time.process_time()
            engines, _ = factory.alternatives(eng, X, y)
            stability["fit_s"], stability["fit_cpu_s"] = time.perf_counter() - start, time.process_time() - cpu
            print(f"{method}: fit {t[1] - t[0]:.1f} s, dense {dense_s}, members {t[2] - t[1]:.1f} s, held out "
                  f"{t[3] - t[2]:.1f} s, measurement {t[4] - t[3]:.1f} s, other engines {stability['fit_s']:.1f} s",
                  flush=True)
            for label, other in engines.items():
                if isinstance(other, Exception):            # a setting that cannot be fitted (the check lists it)
                    stability[label] = {"failed": str(other)}
                    print(label, "failed:", other, flush=True)
                    continue
                start, cpu = time.perf_counter(), time.process_time()
                batch = other.batch(measures={"gap": (gap, Xh, yh)}, self_influence=True, leverage=True)
                stability[label] = {"method_used": other.summary()["method_used"],
                                    "pass_s": time.perf_counter() - start,
                                    "r_self": float(np.corrcoef(batch.self_influence, s)[0, 1]),
                                    "r_measure": float(np.corrcoef(batch.measures["gap"], e)[0, 1])}
                stability[label]["pass_cpu_s"] = time.process_time() - cpu
                print(label, stability[label], flush=True)
            t.append(time.perf_counter())
            c.append(time.process_time())
        c.append(time.process_time())
        if method == "exact":
            auto_reason = AutoSolver().choose(eng.hessian_)[1]
        if ref is None:
            ref = (s, h, e)
        summary = eng.summary()
        rows.append({"method": method, "method_used": summary["method_used"], "residual": summary["residual"],
                     "fit_s": t[1] - t[0], "dense_s": dense_s[0][0] if dense_s else None,
                     "dense_method": dense_s[0][1] if dense_s else None,
                     "self_s": t[2] - t[1], "held_out_s": t[3] - t[2], "measure_s": t[4] - t[3],
                     "stability": stability, "stability_s": t[5] - t[4] if stability else None,
                     "total_s": t[-1] - t[0],
                     "cpu_s": {k: c[i + 1] - c[i] for i, k in enumerate(["fit", "self", "held_out", "measure",
                                                                         "stability"][:len(c) - 1])},
                     "r_self": float(np.corrcoef(s, ref[0])[0, 1]) if per_record else None,
                     "r_held_out": float(np.corrcoef(h, ref[1])[0, 1]) if per_record else None,
                     "r_measure": float(np.corrcoef(e, ref[2])[0, 1]), "per_record_timed": per_record})
        print(rows[-1], flush=True)
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    report = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
              "git_commit": git, "n_train": N, "n_held_out": HOLD, "p": sum(p.numel() for p in model.parameters()),
              "threads": a.threads, "load_average": os.getloadavg(), "auto_reason": auto_reason,
              "training": {"seconds": train_s, **{k: info[k] for k in ("iterations", "grad_norm", "converged")}},
              "rows": rows}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "mlp_engine_profile.json").write_text(json.dumps(report, indent=1))
    threads = "one thread" if a.threads == 1 else f"{a.threads} threads"
    load = ", ".join(f"{v:.1f}" for v in report["load_average"])
    lines = ["# The engine's share of an audit of a 64-unit MLP on 10,000 records", "",
             f"Written by `benchmarks/mlp_engine_profile.py`; {report['date']}, torch {report['torch']}, {threads}, "
             f"commit {git}. Adult, {N} members, {HOLD} held-out records, MLP 91 → 64 tanh → 2 (p = {report['p']}), "
             f"l2 = 1e-3, trained in {train_s:.0f} s ({info['iterations']} iterations, ‖∇R‖∞ = "
             f"{info['grad_norm']:.1e}). 2-core machine shared with other jobs (load average at the end: {load}). "
             "Self-influence with the leverage correction, as the privacy plugin and the stability check ask for it. "
             "*r*: Pearson with the first row (exact).", "",
             f"`auto` on this model: {auto_reason}." if auto_reason else "", "",
             "| method | used | fit s (dense H s) | self-influence (members) s | self-influence (held out) s | one "
             "measurement s | stability check s | total s | r self | r held out | r measurement | residual |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        res = "–" if r["residual"] is None else f"{r['residual']:.1e}"
        def num(v, f):
            return "not run" if v is None else format(v, f)
        timed = r["per_record_timed"]
        fit = f"{r['fit_s']:.1f}" + (f" ({r['dense_s']:.1f}, {r['dense_method']})" if r["dense_s"] is not None else "")
        lines.append(f"| {r['method']} | {r['method_used']} | {fit} | "
                     f"{num(r['self_s'] if timed else None, '.1f')} | "
                     f"{num(r['held_out_s'] if timed else None, '.1f')} | "
                     f"{r['measure_s']:.1f} | {num(r['stability_s'], '.1f')} | {r['total_s']:.1f} | "
                     f"{num(r['r_self'], '.4f')} | {num(r['r_held_out'], '.4f')} | {r['r_measure']:.4f} | {res} |")
    lines += ["", "CPU seconds of this process (all its threads; on an otherwise idle 2-core machine the wall time "
              "would be about this divided by the threads):", ""]
    for r in rows:
        lines.append(f"- {r['method']}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["cpu_s"].items())
                     + f"; total {sum(r['cpu_s'].values()):.1f}")
    for r in rows:
        if not r["stability"]:
            continue
        st = r["stability"]
        lines += ["", f"Stability check of `{r['method']}`: making the other engines {st['fit_s']:.1f} s (CPU "
                  f"{st['fit_cpu_s']:.1f} s); then one pass each (the measurement and every member's leverage "
                  "self-influence):", "",
                  "| setting | method used | pass s (CPU s) | r self (vs the audit's engine) | r measurement |",
                  "|---|---|---|---|---|"]
        for label, v in st.items():
            if label in ("fit_s", "fit_cpu_s"):
                continue
            if "failed" in v:
                lines.append(f"| {label} | not fitted: {v['failed'].split(':')[0]} | – | – | – |")
            else:
                lines.append(f"| {label} | {v['method_used']} | {v['pass_s']:.1f} ({v['pass_cpu_s']:.1f}) | "
                             f"{v['r_self']:.4f} | {v['r_measure']:.4f} |")
    (a.out / "mlp_engine_profile.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out / 'mlp_engine_profile.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
