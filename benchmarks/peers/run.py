"""auditkit against the peers (pyDVL, Kronfluence, dattri, captum) on Adult, side by side in one run.

Run from the repository root, after ``bash benchmarks/peers/setup.sh``::

    .venv/bin/python benchmarks/peers/run.py [--work DIR] [--n-train N] [--timeout S] [--only LIB,...]

Steps (all in this one run, so that every ratio compares numbers measured on the same machine state):

1. ``prepare.py`` (auditkit's venv): featurize Adult, train logistic regression and the 64-unit tanh MLP
   with ``auditkit.fit_model`` (l2 = 1e-3 on every parameter, gradient ∞-norm ≤ 1e-9), train the same
   models on a 2,000-record subsample (warm-started), and retrain the subsample model without each of 24
   records (``retrain_without``, warm start, tolerance 1e-10): the leave-one-out ground truth.
2. One training epoch (forward + backward of the mean loss over all training records, batches of 512),
   median of three, in its own auditkit process.
3. For each model, library and method, three processes (``worker.py``), one after the other, each with
   one thread: ``self`` (fit + self-influence of every training record), ``test`` (fit + influence of 200
   test × all training records), ``loo`` (fit on the subsample + scores of the 24 removed records).
   Wall time and peak RSS of each process are taken from ``os.wait4`` (the child's own ``ru_maxrss``;
   imports and data loading included in wall and RSS, not in the fit/score seconds).
   Methods that solve one linear system per record (CG, LiSSA, dattri's per-batch solves) cannot score
   30k records in the time available: they score the first ``LIMIT`` records and their scoring time is
   extrapolated linearly to all records (marked ``~`` in the tables, with the number actually scored).
4. Accuracy: Pearson of each method's predicted changes with the actual retraining changes (self-loss of
   the removed record; mean loss over the 200 test records; every test record × removed record pair),
   and, for the full-data tasks, Pearson with auditkit ``exact`` on the same scores (when exact ran).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
AK_PY = ROOT / ".venv" / "bin" / "python"
PEER_PY = HERE / ".venv" / "bin" / "python"
RESULTS = ROOT / "benchmarks" / "results"

# (library, method, {task: limit on the records scored (None: all)})
METHODS = [
    ("auditkit", "exact", {}),
    ("auditkit", "cg", {"self": 16}),
    ("auditkit", "arnoldi", {}),
    ("auditkit", "ekfac", {}),
    ("auditkit", "kfac", {}),
    ("pydvl", "direct", {}),
    ("pydvl", "cg", {"self": 128}),
    ("pydvl", "lissa", {"self": 128}),
    ("pydvl", "arnoldi", {}),
    ("pydvl", "ekfac", {}),
    ("kronfluence", "ekfac", {}),
    ("kronfluence", "kfac", {}),
    ("dattri", "explicit", {"self": 128, "test": 128}),
    ("dattri", "cg", {"self": 128, "test": 128}),
    ("dattri", "lissa", {"self": 16, "test": 16}),
    ("dattri", "arnoldi", {}),
    ("dattri", "ekfac", {}),
    ("captum", "tracincp", {}),
    ("captum", "arnoldi", {}),
]
# skipped without running, with the reason (would exhaust the 24 GB machine shared with other agents)
SKIP = {
    ("dattri", "explicit", "mlp"): "torch.func.hessian over one batch of all records: p=6,018 tangents x "
                                    "32,561 x 64 activations in float64 ~ 90 GB; not run",
}


MEM_LIMIT_GB = 10  # address-space cap per process: the machine (24 GB) is shared; a peer over it fails


def _limit_memory() -> None:
    import resource
    cap = MEM_LIMIT_GB * 1024 ** 3
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def run_child(cmd: list[str], timeout: float, env: dict) -> dict:
    """Run a process; its wall time, peak RSS (MiB, from wait4) and exit status; killed after ``timeout``."""
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        proc = subprocess.Popen(cmd, env=env, stdout=devnull, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_limit_memory)
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, ru = os.wait4(proc.pid, 0)
            return {"wall_s": time.perf_counter() - t0, "rss_mib": ru.ru_maxrss / 1024, "status": "timeout",
                    "error": f"killed after {timeout:.0f} s"}
        time.sleep(0.05)
    err = proc.stderr.read()
    rc = os.waitstatus_to_exitcode(status)
    out = {"wall_s": time.perf_counter() - t0, "rss_mib": ru.ru_maxrss / 1024,
           "status": "ok" if rc == 0 else "error"}
    if rc != 0:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        out["error"] = f"exit {rc}: " + (" | ".join(lines[-3:]) if lines else "(no message)")
    return out


def pearson(a, b) -> float | None:
    a, b = np.ravel(a), np.ravel(b)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return None
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/auditkit-peers"))
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=90)
    ap.add_argument("--only", default=None, help="comma-separated libraries")
    ap.add_argument("--models", default="mlp,logreg")
    ap.add_argument("--tasks", default="self,loo,test")
    ap.add_argument("--skip-prepare", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}
    a.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if not a.skip_prepare:
        cmd = [str(AK_PY), str(HERE / "prepare.py"), "--work", str(a.work), "--models", a.models]
        if a.n_train:
            cmd += ["--n-train", str(a.n_train)]
        subprocess.run(cmd, env=env, check=True)
    prep = json.loads((a.work / "prepare.json").read_text())
    n = prep["n_train"]
    versions_file = HERE / ".venv" / "versions.json"
    versions = json.loads(versions_file.read_text()) if versions_file.exists() else {}
    libs = None if a.only is None else set(a.only.split(","))
    results = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
               "cpu_threads_per_process": 1, "n_train": n, "prepare": prep, "versions": versions,
               "models": {}}
    json_path = a.out / "peers.json"
    for kind in a.models.split(","):
        loo = np.load(a.work / f"{kind}.npz")
        truth_self, truth_test = loo["loo_dself"], loo["loo_dtest"]          # (24,), (200, 24)
        rows = {}
        ep = a.work / f"epoch-{kind}.npz"
        r = run_child([str(AK_PY), str(HERE / "worker.py"), "auditkit", "-", kind, "epoch", str(a.work), str(ep)],
                      a.timeout, env)
        epoch_s = float(np.load(ep)["t_epoch_s"]) if r["status"] == "ok" else None
        results["models"][kind] = {"epoch_s": epoch_s, "epoch_process": r, "rows": rows}
        print(f"[{kind}] one epoch: {epoch_s}", flush=True)
        exact = {}
        for lib, method, limits in METHODS:
            if libs and lib not in libs:
                continue
            py = AK_PY if lib == "auditkit" else PEER_PY
            key = f"{lib}/{method}"
            rows[key] = {}
            for task in a.tasks.split(","):
                if (lib, method, kind) in SKIP:
                    rows[key][task] = {"status": "skipped", "error": SKIP[(lib, method, kind)]}
                    continue
                if task == "test" and rows[key].get("self", {}).get("status") == "timeout":
                    rows[key][task] = {"status": "skipped", "error": "not run: the same fit already timed "
                                       "out in the self-influence task", "wall_s": 0.0, "rss_mib": 0.0}
                    continue
                out = a.work / f"{kind}-{lib}-{method}-{task}.npz"
                out.unlink(missing_ok=True)
                limit = limits.get(task) if task != "loo" else None
                cmd = [str(py), str(HERE / "worker.py"), lib, method, kind, task, str(a.work), str(out)]
                if limit is not None and limit < n:
                    cmd += ["--limit", str(limit)]
                r = run_child(cmd, a.timeout, env)
                if r["status"] == "ok":
                    z = np.load(out)
                    t = {k[2:]: float(z[k]) for k in z.files if k.startswith("t_")}
                    r.update(t)
                    scored = int(t["n_scored"])
                    total_n = n if task != "loo" else len(truth_self)
                    part = (t["self_s"] if task == "self" else t["test_s"] if task == "test"
                            else t["self_s"] + t["test_s"])
                    r["extrapolated"] = scored < total_n
                    r["time_s"] = t["fit_s"] + part * (total_n / scored)
                    if task == "loo":
                        r["pearson_self_loo"] = pearson(z["self"], truth_self)
                        r["pearson_testmean_loo"] = pearson(z["test"].mean(0), truth_test.mean(0))
                        r["pearson_pairs_loo"] = pearson(z["test"], truth_test)
                        r["scale_self_loo"] = float(np.median(z["self"] / truth_self))
                    elif task == "self":
                        if key == "auditkit/exact":
                            exact["self"] = z["self"]
                        elif "self" in exact:
                            r["pearson_vs_exact"] = pearson(z["self"], exact["self"][:scored])
                            r["median_ratio_vs_exact"] = float(np.median(z["self"] / exact["self"][:scored]))
                    elif task == "test":
                        if key == "auditkit/exact":
                            exact["test"] = z["test"]
                        elif "test" in exact:
                            r["pearson_vs_exact"] = pearson(z["test"], exact["test"][:, :scored])
                    out.unlink(missing_ok=True)
                rows[key][task] = r
                print(f"[{kind}] {key:22s} {task:5s} {r['status']:7s} wall {r['wall_s']:7.1f}s "
                      f"time {r.get('time_s', float('nan')):8.1f}s rss {r['rss_mib']:6.0f} MiB "
                      + " ".join(f"{k}={v:.3f}" for k, v in r.items() if k.startswith("pearson") and v is not None)
                      + (f" ERR {r['error'][:300]}" if "error" in r else ""), flush=True)
                a.out.mkdir(parents=True, exist_ok=True)
                json_path.write_text(json.dumps(results, indent=1, default=float))
    results["total_wall_s"] = time.perf_counter() - started
    json_path.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
