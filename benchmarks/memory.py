"""Peak memory of influence at scale: self-influence of 1,000,000 records (logistic regression, 100 features)
and of 200,000 records (MLP 100 → 64 → 2, tanh), each in its own process, against a 2 GB target.

Each case runs ``python benchmarks/memory.py --case NAME`` in a fresh subprocess, which generates its data,
fits the engine and computes the self-influence of every training record, then reports the peak resident
set size (``VmHWM`` of ``/proc/self/status``; ``ru_maxrss`` as a check) and the RSS at each stage.

Data: synthetic, generated in chunks of 100,000 rows straight into a preallocated float32 array (features
N(0, 1); labels drawn from a logistic model, or from the MLP's own predictions), so no temporary copy of
the whole set exists. float32 storage (400 MB for 1M × 100) is converted to float64 one chunk at a time by
the engine, which computes in float64. The parameters are not trained: a random initialisation with
``l2 = 1e-3`` (H positive definite for these losses), because memory does not depend on the parameter
values, and training 1M records would dominate the run time. One thread.

    .venv/bin/python benchmarks/memory.py            # all cases; writes benchmarks/results/memory.{md,json}
    .venv/bin/python benchmarks/memory.py --case lr_exact
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_MB = 2048
CHUNK_ROWS = 100_000

#: name → (model, records, method, leverage, chunk_size)
CASES = {
    "lr_exact": ("logistic", 1_000_000, "exact", False, 2048),
    "lr_ekfac": ("logistic", 1_000_000, "ekfac", False, 2048),
    "lr_exact_leverage": ("logistic", 1_000_000, "exact", True, 2048),
    "mlp_ekfac": ("mlp", 200_000, "ekfac", False, 2048),
}
#: name → (model, records, method, projection_dim): influence of 20 records on every training record, three
#: times in one process: without a cache, with an empty cache (computed and written), with the filled cache (read)
CACHE_CASES = {
    "lr_cache": ("logistic", 1_000_000, "exact", None),
    "mlp_cache_projected": ("mlp", 200_000, "ekfac", 256),
    "mlp_cache_projected_2048": ("mlp", 200_000, "ekfac", 2048),
}


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_data(kind: str, n: int, d: int = 100):
    """(model, X float32 (n, d), y) generated in chunks; see the module docstring."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    model = (torch.nn.Linear(d, 2) if kind == "logistic" else
             torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2))).double()
    rng = np.random.default_rng(0)
    X = np.empty((n, d), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    w = rng.normal(size=d) / np.sqrt(d)
    for s in range(0, n, CHUNK_ROWS):
        block = rng.normal(size=(min(CHUNK_ROWS, n - s), d))
        X[s:s + len(block)] = block
        if kind == "logistic":
            logit = block @ w
        else:
            with torch.no_grad():
                out = model(torch.from_numpy(block))
            logit = (out[:, 1] - out[:, 0]).numpy() * 3
        y[s:s + len(block)] = rng.random(len(block)) < 1 / (1 + np.exp(-logit))
    return model, X, y


def run_case(name: str) -> dict:
    import numpy as np
    import torch

    import auditkit as ak

    torch.set_num_threads(1)
    kind, n, method, leverage, chunk = CASES[name]
    stages = {"imported": status_mb("VmRSS")}
    d = 100
    model, X, y = make_data(kind, n, d)
    stages["data"] = status_mb("VmRSS")
    t0 = time.perf_counter()
    engine = ak.InfluenceEngine(model, "cross_entropy", l2=1e-3, method=method, chunk_size=chunk).fit(X, y)
    fit_s = time.perf_counter() - t0
    stages["fitted"] = status_mb("VmRSS")
    t0 = time.perf_counter()
    s = engine.self_influence(leverage=leverage)
    self_s = time.perf_counter() - t0
    stages["self-influence"] = status_mb("VmRSS")
    assert s.shape == (n,) and np.isfinite(s).all()
    return {"case": name, "model": kind, "records": n, "features": d, "parameters": engine.n_params_,
            "method": method, "leverage": leverage, "chunk_size": chunk, "data_mb": (X.nbytes + y.nbytes) / 2**20,
            "rss_mb": stages, "peak_rss_mb": status_mb("VmHWM"),
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "fit_s": fit_s, "self_influence_s": self_s, "median_self_influence": float(np.median(s)),
            "within_target": status_mb("VmHWM") <= TARGET_MB}


def run_cache_case(name: str) -> dict:
    import shutil
    import tempfile

    import numpy as np
    import torch

    import auditkit as ak
    from auditkit.gradcache import GradientCache

    torch.set_num_threads(1)
    kind, n, method, dim = CACHE_CASES[name]
    model, X, y = make_data(kind, n)
    test = (X[:20], y[:20])
    directory = tempfile.mkdtemp(prefix="auditkit-gradcache-")
    times, results = {}, {}
    try:
        for label in ("no cache", "cache miss", "cache hit"):
            source = None if label == "no cache" else GradientCache(directory, projection_dim=dim)
            engine = ak.InfluenceEngine(model, "cross_entropy", l2=1e-3, method=method, chunk_size=2048,
                                        gradients=source).fit(X, y)
            if source is not None:
                t0 = time.perf_counter()
                source.describe(engine)                       # hashes of model and data, timed on their own
                times[f"{label}: hashing"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            results[label] = engine.influence(*test)
            times[label] = time.perf_counter() - t0
            if label == "cache miss":
                del results["cache miss"]                      # keep two (20, n) outputs at most
            if label == "no cache":                            # |cos(H⁻¹∇ℓ_i, g_j)|: the scale of the projection error
                tx, ty = (torch.as_tensor(t).double() for t in test)
                a = engine.solver_.solve(engine.fn_.per_record_grads(tx, ty))
                b = engine.fn_.per_record_grads(torch.as_tensor(X[:2000]).double(), torch.as_tensor(y[:2000]))
                cosine = float(((a @ b.T) / a.norm(dim=1)[:, None] / b.norm(dim=1)).abs().median())
        disk = sum(f.stat().st_size for f in Path(directory).iterdir()) / 2**20
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    exact = results["no cache"]
    return {"case": name, "model": kind, "records": n, "method": method, "projection_dim": dim,
            "seconds": times, "disk_mb": disk, "peak_rss_mb": status_mb("VmHWM"),
            "median_abs_cosine": cosine,
            "max_abs_diff_vs_no_cache": float(np.abs(results["cache hit"] - exact).max()),
            "pearson_vs_no_cache": float(np.corrcoef(results["cache hit"].ravel(), exact.ravel())[0, 1]),
            "within_target": status_mb("VmHWM") <= TARGET_MB}


def write(results: list[dict]) -> None:
    """Results files; cases run earlier and not rerun now are kept from memory.json."""
    import torch
    old = RESULTS / "memory.json"
    if old.exists():
        kept = {r["case"]: r for r in json.loads(old.read_text())["cases"]}
        kept.update({r["case"]: r for r in results})
        results = [kept[c] for c in list(CASES) + list(CACHE_CASES) if c in kept]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    meta = {"when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "threads": 1, "commit": commit, "target_mb": TARGET_MB}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps({"meta": meta, "cases": results}, indent=1))
    lines = ["# Peak memory of self-influence at scale", "",
             f"Written by `benchmarks/memory.py`; {meta['when']}, torch {meta['torch']}, one thread, commit "
             f"{commit}.", "",
             "Each case is a fresh process: synthetic data generated in chunks into a float32 array (the engine "
             "computes in float64 one chunk at a time), parameters at a random initialisation with l2 = 1e-3, "
             "`fit` then `self_influence()` of every record. *peak RSS*: `VmHWM` of the process, everything "
             "included (Python, torch, the data, the engine). *RSS after*: resident memory after each stage. "
             f"Target: ≤ {TARGET_MB} MB.", "",
             "| case | records | p | method | chunk | data MB | RSS after import / data / fit / self-influence MB "
             "| peak RSS MB | ≤ 2 GB | fit s | self-influence s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["case"] in CACHE_CASES:
            continue
        if "error" in r:
            lines.append(f"| {r['case']} | | | | | | failed: {r['error']} | | | | |")
            continue
        st = r["rss_mb"]
        method = r["method"] + (" (leverage)" if r["leverage"] else "")
        model = "LR" if r["model"] == "logistic" else "MLP 100-64-2"
        lines.append(f"| {r['case']} ({model}) | {r['records']:,} | {r['parameters']:,} | {method} | {r['chunk_size']} "
                     f"| {r['data_mb']:.0f} | {st['imported']:.0f} / {st['data']:.0f} / {st['fitted']:.0f} / "
                     f"{st['self-influence']:.0f} | {r['peak_rss_mb']:.0f} | {'yes' if r['within_target'] else 'NO'} "
                     f"| {r['fit_s']:.1f} | {r['self_influence_s']:.1f} |")
    cache = [r for r in results if r["case"] in CACHE_CASES and "error" not in r]
    if cache:
        lines += ["", "## The gradient cache", "",
                  "`influence` of 20 records on every training record, three times in one process: without a "
                  "cache, with an empty `GradientCache` (gradients computed and written), with the filled one (read "
                  "from disk; hashing model and data is timed separately). Seconds, one thread. *median abs cosine*: "
                  "of "
                  "H⁻¹∇ℓ_i and g_j over the test records and 2,000 training records; a projection to d dimensions "
                  "has an error of about √(2/d) times ‖H⁻¹∇ℓ_i‖‖g_j‖, so it preserves the ranking only when √(2/d) is "
                  "well below the cosines (d ≫ 2/cos²); unprojected, the cache gives the same numbers.", "",
                  "| case | records | projection | disk MB | no cache s | miss s | hit s | hashing s "
                  "| median abs cosine "
                  "| max abs diff vs no cache | Pearson vs no cache | peak RSS MB |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in cache:
            t = r["seconds"]
            lines.append(f"| {r['case']} ({r['method']}) | {r['records']:,} | {r['projection_dim'] or 'none'} "
                         f"| {r['disk_mb']:.0f} | {t['no cache']:.1f} | {t['cache miss']:.1f} | {t['cache hit']:.1f} "
                         f"| {t['cache hit: hashing']:.1f} | {r['median_abs_cosine']:.3f} "
                         f"| {r['max_abs_diff_vs_no_cache']:.1e} "
                         f"| {r['pearson_vs_no_cache']:.4f} | {r['peak_rss_mb']:.0f} |")
    (RESULTS / "memory.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES) + sorted(CACHE_CASES), action="append",
                        help="run only these cases (each in a subprocess); default: all")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name = args.case[0]
        print(json.dumps(run_case(name) if name in CASES else run_cache_case(name)))
        return
    results = []
    for name in args.case or list(CASES) + list(CACHE_CASES):
        proc = subprocess.run([sys.executable, __file__, "--child", "--case", name], capture_output=True, text=True,
                              env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
        if proc.returncode:
            results.append({"case": name, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]})
        else:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr)
    write(results)


if __name__ == "__main__":
    main()
