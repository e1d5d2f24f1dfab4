"""Block CG: many right-hand sides for about one solve's cost, and auditkit's CG against pyDVL's (issue 19).

What it measures
----------------
On the peers' logistic-regression task (Adult: 32,561 training records, 91 features → 2 classes, l2 = 1e-3,
float64; ``benchmarks/peers/prepare.py``), in ONE process, one thread, after an untimed warm-up:

- ``influence(X_test[:k], ...)`` of k = 1, 50 and 200 test records × every training record with ``cg`` (block CG,
  tol 1e-8), ``cg`` at tol 1e-6 (pyDVL's rtol), ``cg`` with ``block=False`` (independent recursions), and
  ``pcg`` (EK-FAC preconditioned); fit and influence seconds, block steps, Hessian-vector products, and the
  largest deviation from ``exact`` (relative to exact's largest value). Ratio of interest: k = 50 against k = 1.
- With ``--peer-python`` (the peers' venv, see ``benchmarks/peers/setup.sh``): pyDVL's ``CgInfluence``
  (``solve_simultaneously=True``, rtol 1e-6, as in ``benchmarks/peers/worker.py``) and auditkit's ``cg`` on the
  same task (fit + 200 test × all training records), each in its own process via ``worker.py`` (every
  process warms up on 1,024 records first), alternating A B A B; Pearson with exact.

Run: ``.venv/bin/python benchmarks/block_cg.py --work DIR [--peer-python PATH] [--out DIR]`` (``DIR`` as written by
``benchmarks/peers/prepare.py --work DIR --models logreg``). Writes ``block_cg.json`` and ``block_cg.md``. Not a test.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(PEERS))

from common import L2, build_model  # noqa: E402

from auditkit.influence import InfluenceEngine  # noqa: E402

torch.set_num_threads(1)
VARIANTS = [("cg", "cg", {}), ("cg, tol=1e-6", "cg", {"tol": 1e-6}), ("cg, block=False", "cg", {"block": False}),
            ("pcg (EK-FAC)", "pcg", {})]


def load(work: Path):
    d = np.load(work / "adult.npz")
    m = np.load(work / "logreg.npz")
    X, y = torch.as_tensor(d["X"]), torch.as_tensor(d["y"])
    Xt, yt = torch.as_tensor(d["X_test"]), torch.as_tensor(d["y_test"])
    model = build_model("logreg", X.shape[1])
    model.load_state_dict({k[5:]: torch.as_tensor(m[k]) for k in m.files if k.startswith("full.")})
    return model.eval(), X, y, Xt, yt


def in_process(model, X, y, Xt, yt) -> list[dict]:
    exact = InfluenceEngine(model, "cross_entropy", l2=L2, method="exact").fit(X, y).influence(Xt, yt)
    InfluenceEngine(model, "cross_entropy", l2=L2, method="cg").fit(X[:1024], y[:1024]).influence(Xt[:5], yt[:5])
    rows = []
    for name, method, opts in VARIANTS:
        for k in (1, 50, 200):
            if opts.get("block") is False and k == 200:
                continue
            t0 = time.perf_counter()
            eng = InfluenceEngine(model, "cross_entropy", l2=L2, method=method, **opts).fit(X, y)
            t1 = time.perf_counter()
            S = eng.influence(Xt[:k], yt[:k])
            t2 = time.perf_counter()
            s = eng.summary()["solver"]
            rows.append({"variant": name, "k": k, "fit_s": t1 - t0, "influence_s": t2 - t1,
                         "steps": s["iterations"], "hvps": s["hessian_vector_products"], "residual": s["residual"],
                         "max_rel_err": float(np.abs(S - exact[:k]).max() / np.abs(exact[:k]).max())})
            print(rows[-1], flush=True)
    return rows


def peers(work: Path, peer_python: str, exact: np.ndarray) -> list[dict]:
    rows = []
    for rep in range(2):
        for lib, py in (("pydvl", peer_python), ("auditkit", sys.executable)):
            out = work / f"blockcg_{lib}_{rep}.npz"
            t0 = time.perf_counter()
            subprocess.run([py, str(PEERS / "worker.py"), lib, "cg", "logreg", "test", str(work), str(out)],
                           check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
            wall = time.perf_counter() - t0
            r = np.load(out)
            S = r["test"]
            rows.append({"library": lib, "repeat": rep, "fit_s": float(r["t_fit_s"]), "test_s": float(r["t_test_s"]),
                         "wall_s": wall, "pearson_exact": float(np.corrcoef(S.ravel(), exact.ravel())[0, 1]),
                         "max_rel_err": float(np.abs(S - exact).max() / np.abs(exact).max())})
            print(rows[-1], flush=True)
    return rows


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "block_cg.json").write_text(json.dumps(report, indent=1))
    env = report["environment"]
    lines = ["# Block CG: many right-hand sides, and auditkit's CG against pyDVL's", "",
             f"Written by `benchmarks/block_cg.py`; {env['date']}, torch {env['torch']}, one thread, commit "
             f"{env['git_commit']}. Adult logistic regression (n = {report['n_train']}, p = {report['p']}, l2 = 1e-3, "
             "float64), the peers' task (`benchmarks/peers/prepare.py`). 2-core machine shared with other jobs: "
             "ratios inside one table are the reliable part.", "",
             "## In one process: k test records × every training record", "",
             "| variant | k | fit s | influence s | block steps | Hessian-vector products | residual | "
             "max rel. err vs exact |", "|---|---|---|---|---|---|---|---|"]
    for r in report["in_process"]:
        lines.append(f"| {r['variant']} | {r['k']} | {r['fit_s']:.2f} | {r['influence_s']:.2f} | {r['steps']} | "
                     f"{r['hvps']} | {r['residual']:.1e} | {r['max_rel_err']:.1e} |")
    get = {(r["variant"], r["k"]): r for r in report["in_process"]}
    one, fifty = get[("cg", 1)], get[("cg", 50)]
    cols = get.get(("cg, block=False", 50))
    lines += ["", f"- 50 test records with block CG: {fifty['influence_s']:.2f} s = "
                  f"{fifty['influence_s'] / one['influence_s']:.1f}× one record's solve ({one['influence_s']:.2f} s); "
                  f"{fifty['hvps']} Hessian-vector products against {one['hvps']} for one record"
              + (f" and {cols['hvps']} for 50 independent recursions ({cols['influence_s']:.2f} s)" if cols else "")
              + " (issue 19: ≤ 3×)."]
    if report.get("peers"):
        lines += ["", "## auditkit `cg` against pyDVL `CgInfluence` (fit + 200 test × all training records)", "",
                  "Each in its own process (`benchmarks/peers/worker.py`, warm-up on 1,024 records first), "
                  "alternating. pyDVL: `solve_simultaneously=True`, rtol 1e-6; auditkit: block CG, tol 1e-8.", "",
                  "| library | repeat | fit s | scoring s | total s | process wall s | Pearson vs exact | "
                  "max rel. err |", "|---|---|---|---|---|---|---|---|"]
        for r in report["peers"]:
            lines.append(f"| {r['library']} | {r['repeat']} | {r['fit_s']:.2f} | {r['test_s']:.2f} | "
                         f"{r['fit_s'] + r['test_s']:.2f} | {r['wall_s']:.1f} | {r['pearson_exact']:.6f} | "
                         f"{r['max_rel_err']:.1e} |")
        tot = {lib: np.median([r["fit_s"] + r["test_s"] for r in report["peers"] if r["library"] == lib])
               for lib in ("pydvl", "auditkit")}
        lines += ["", f"- Median total: auditkit {tot['auditkit']:.2f} s, pyDVL {tot['pydvl']:.2f} s: auditkit "
                      f"{'at least as fast' if tot['auditkit'] <= tot['pydvl'] else 'slower'} "
                      f"({tot['pydvl'] / tot['auditkit']:.1f}× pyDVL's time over auditkit's). Versions: "
                      f"{report.get('peer_versions')}."]
        if report.get("peer_note"):
            lines += ["", f"Note on the peers' venv: {report['peer_note']}"]
    (out / "block_cg.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--peer-python", default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--peer-note", default=None, help="how the peers' venv was built, if not by setup.sh")
    a = ap.parse_args(argv)
    model, X, y, Xt, yt = load(a.work)
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    report = {"environment": {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                              "python": platform.python_version(), "torch": torch.__version__, "git_commit": git},
              "n_train": len(y), "p": sum(t.numel() for t in model.parameters())}
    report["in_process"] = in_process(model, X, y, Xt, yt)
    if a.peer_python:
        exact = InfluenceEngine(model, "cross_entropy", l2=L2, method="exact").fit(X, y).influence(Xt, yt)
        report["peers"] = peers(a.work, a.peer_python, exact)
        report["peer_note"] = a.peer_note
        report["peer_versions"] = subprocess.run(
            [a.peer_python, "-c", "import numpy, torch, pydvl; print(f'pydvl {pydvl.__version__}, numpy "
             "{numpy.__version__}, torch {torch.__version__}')"], capture_output=True, text=True).stdout.strip()
    write(report, a.out)
    print(f"wrote {a.out / 'block_cg.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
