"""Self-influence of every Adult training record against one training epoch, repeated (issue 7, "≤ 4× an epoch").

``benchmarks/peers/run.py`` measures the ratio once per method, side by side with the peers. This script
repeats it, so that one noisy measurement on a shared machine does not decide the verdict: in each of
``--processes`` fresh processes (one thread), ``--pairs`` interleaved pairs of

- one epoch: forward + backward of the mean cross-entropy over all 32,561 records, batches of 512 (as in
  ``benchmarks/peers/worker.py``: the same model, data and batch size), and
- fit + self-influence of every record with ``InfluenceEngine(method=..., chunk_size=512)``,

after one untimed warm-up of each. The ratio of each pair is recorded; the verdict uses the median over all
pairs of all processes, and the table also gives the range. Both wall-clock and CPU time (``process_time``)
are reported: CPU time is less sensitive to other jobs on the machine.

Needs the prepared Adult data of the peers benchmark (``benchmarks/peers/run.py`` step 1, or
``.venv/bin/python benchmarks/peers/prepare.py --work DIR``).

    .venv/bin/python benchmarks/epoch_ratio.py [--work /tmp/auditkit-peers] [--processes 3] [--pairs 5]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("ekfac", "kfac")
MODELS = {"mlp": "MLP 91→64 tanh→2", "logreg": "logistic regression (Linear 91→2)"}


def child(work: Path, kind: str, method: str, pairs: int) -> dict:
    """In this (fresh) process: ``pairs`` interleaved (epoch, fit + self-influence) timings."""
    import torch
    import torch.nn.functional as F
    sys.path[:0] = [str(ROOT / "benchmarks" / "peers"), str(ROOT)]
    from common import BATCH, L2
    from worker import load

    from auditkit.influence import InfluenceEngine
    torch.set_num_threads(1)
    model, X, y, *_ = load(work, kind, "self")

    def epoch():
        for s in range(0, len(y), BATCH):
            model.zero_grad()
            F.cross_entropy(model(X[s:s + BATCH]), y[s:s + BATCH]).backward()

    def influence():
        InfluenceEngine(model, "cross_entropy", l2=L2, method=method, chunk_size=BATCH).fit(X, y).self_influence()

    def timed(f):
        w, c = time.perf_counter(), time.process_time()
        f()
        return time.perf_counter() - w, time.process_time() - c

    epoch(), influence()                                            # warm-up, untimed
    rows = []
    for _ in range(pairs):
        (ew, ec), (iw, ic) = timed(epoch), timed(influence)
        rows.append({"epoch_wall_s": ew, "epoch_cpu_s": ec, "influence_wall_s": iw, "influence_cpu_s": ic})
    return {"pairs": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/auditkit-peers"))
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.work, a.child[0], a.child[1], a.pairs)))
        return 0
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    results = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
               "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                        text=True).stdout.strip(),
               "processes": a.processes, "pairs": a.pairs, "cases": {}}
    for kind in MODELS:
        for method in METHODS:
            pairs = []
            for _ in range(a.processes):
                out = subprocess.run([sys.executable, __file__, "--work", str(a.work), "--pairs", str(a.pairs),
                                      "--child", kind, method], env=env, capture_output=True, text=True, check=True)
                pairs += json.loads(out.stdout.strip().splitlines()[-1])["pairs"]
            for clock in ("wall", "cpu"):
                ratios = [p[f"influence_{clock}_s"] / p[f"epoch_{clock}_s"] for p in pairs]
                results["cases"].setdefault(f"{kind}/{method}", {"pairs": pairs})[clock] = {
                    "median_ratio": statistics.median(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios),
                    "median_epoch_s": statistics.median(p[f"epoch_{clock}_s"] for p in pairs),
                    "median_influence_s": statistics.median(p[f"influence_{clock}_s"] for p in pairs)}
            c = results["cases"][f"{kind}/{method}"]
            print(f"{kind:7s} {method:6s} wall ratio {c['wall']['median_ratio']:.2f} "
                  f"[{c['wall']['min_ratio']:.2f}, {c['wall']['max_ratio']:.2f}]  cpu ratio "
                  f"{c['cpu']['median_ratio']:.2f}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "epoch_ratio.json").write_text(json.dumps(results, indent=1))
    write_markdown(results, a.out / "epoch_ratio.md")
    return 0


def write_markdown(res: dict, path: Path) -> None:
    n = res["processes"] * res["pairs"]
    lines = ["# Self-influence of every Adult training record against one training epoch", "",
             f"Written by `benchmarks/epoch_ratio.py` ({res['date']}, {res['machine']}, commit {res['commit']}): "
             f"{res['processes']} fresh processes × {res['pairs']} interleaved pairs = {n} pairs per row, one "
             "thread, batches of 512, 32,561 records, float64. *Ratio* = (fit + self-influence of every record) / "
             "(forward + backward of the mean loss over every record); median over the pairs, [min, max] in "
             "brackets. Wall-clock and CPU (`process_time`) time.", "",
             "| model | method | epoch s (wall) | fit + self-influence s (wall) | ratio (wall) | ratio (CPU) | "
             "≤ 4× |", "|---|---|---|---|---|---|---|"]
    for key, c in res["cases"].items():
        kind, method = key.split("/")
        w, cpu = c["wall"], c["cpu"]
        lines.append(f"| {MODELS[kind]} | {method} | {w['median_epoch_s']:.3f} | {w['median_influence_s']:.3f} | "
                     f"{w['median_ratio']:.2f} [{w['min_ratio']:.2f}, {w['max_ratio']:.2f}] | "
                     f"{cpu['median_ratio']:.2f} [{cpu['min_ratio']:.2f}, {cpu['max_ratio']:.2f}] | "
                     f"{'PASS' if w['median_ratio'] <= 4 else 'FAIL'} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
