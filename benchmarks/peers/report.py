"""Write benchmarks/results/peers.md from peers.json (run by run.py's caller; no measurement here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
MODEL_NAMES = {"logreg": "logistic regression (Linear 91→2)", "mlp": "MLP 91→64 tanh→2"}


def f(v, fmt="{:.3f}"):
    return "–" if v is None else fmt.format(v)


def cell_time(r):
    if r.get("status") != "ok":
        return "–"
    s = f"{r['time_s']:.1f}"
    return f"~{s} ({int(r['n_scored'])} scored)" if r.get("extrapolated") else s


def status(r):
    if r is None:
        return "not run"
    if r.get("status") == "ok":
        return "ok"
    err = r.get("error", "").split(" | ")[-1].strip()   # the exception's own line
    return f"**{r['status']}**: {err[:240]}".replace("|", "/")


def verdicts(res):
    out = []
    mlp = res["models"].get("mlp")
    if mlp:
        rows = mlp["rows"]
        r_of = {k: (v.get("loo") or {}).get("pearson_self_loo") for k, v in rows.items()}
        t_of = {k: (v.get("self") or {}).get("time_s") if (v.get("self") or {}).get("status") == "ok" else None
                for k, v in rows.items()}
        peers = {k: r for k, r in r_of.items() if not k.startswith("auditkit") and r is not None}
        if peers:
            best = max(peers.values())
            good_peers = {k: t_of[k] for k, r in peers.items() if r >= best and t_of[k] is not None}
            good_ak = {k: t_of[k] for k, r in r_of.items() if k.startswith("auditkit") and r is not None
                       and r >= best and t_of[k] is not None}
            best_peer = [k for k, r in peers.items() if r == best][0]
            if good_ak and good_peers:
                ak = min(good_ak, key=good_ak.get)
                pk = min(good_peers, key=good_peers.get)
                ratio = good_peers[pk] / good_ak[ak]
                out.append(f"- **Self-influence on the Adult MLP, ≥ 3× faster than the fastest peer at least as "
                           f"accurate: {'PASS' if ratio >= 3 else 'FAIL'}.** Best peer correlation with "
                           f"retraining (self-loss, 24 records): {best_peer} r = {best:.3f}. auditkit's fastest "
                           f"method with r ≥ {best:.3f}: {ak} (r = {r_of[ak]:.3f}, {good_ak[ak]:.1f} s); fastest "
                           f"peer with r ≥ {best:.3f}: {pk} ({good_peers[pk]:.1f} s): ratio {ratio:.1f}×.")
            else:
                ak_best = max(((k, r) for k, r in r_of.items() if k.startswith("auditkit") and r is not None),
                              key=lambda kv: kv[1], default=(None, None))
                out.append(f"- **Self-influence on the Adult MLP, ≥ 3× faster than the fastest peer at least as "
                           f"accurate: FAIL** (no auditkit method reaches the best peer's correlation with "
                           f"retraining, {best_peer} r = {best:.3f}; auditkit's best: {ak_best[0]} r = "
                           f"{f(ak_best[1])}).")
            # the same comparison with a tolerance: r on 24 records differs by more than 0.01 by chance alone
            tol = 0.01
            ak_t = {k: t_of[k] for k, r in r_of.items() if k.startswith("auditkit") and r is not None
                    and r >= best - tol and t_of[k] is not None}
            pk_t = {k: t_of[k] for k, r in peers.items() if r >= best - tol and t_of[k] is not None}
            if ak_t and pk_t:
                ak, pk = min(ak_t, key=ak_t.get), min(pk_t, key=pk_t.get)
                out.append(f"  - For information, counting r within {tol} of the best peer's as equal: auditkit "
                           f"{ak} ({ak_t[ak]:.1f} s, r = {r_of[ak]:.3f}) vs {pk} ({pk_t[pk]:.1f} s, r = "
                           f"{r_of[pk]:.3f}): {pk_t[pk] / ak_t[ak]:.1f}×.")
            ranked = sorted(((k, r_of[k], t_of[k]) for k in r_of if r_of[k] is not None), key=lambda x: -x[1])
            out.append("  - Ranking by r (self-loss vs retraining) with the self-influence time: "
                       + "; ".join(f"{k} {r:.3f} ({'–' if t is None else f'{t:.1f} s'})" for k, r, t in ranked)
                       + ".")
    for kind, m in res["models"].items():
        ak = {k: v.get("self") for k, v in m["rows"].items() if k.startswith("auditkit")}
        ok = {k: v for k, v in ak.items() if v and v.get("status") == "ok" and not v.get("extrapolated")
              and v.get("epoch_same_process_s")}
        if not ok:
            continue
        ratio = {k: v["time_s"] / v["epoch_same_process_s"] for k, v in ok.items()}
        k = min(ratio, key=ratio.get)
        v = ok[k]
        line = (f"- **Self-influence of every training record ≤ 4× one epoch, {MODEL_NAMES[kind]}: "
                f"{'PASS' if ratio[k] <= 4 else 'FAIL'}.** Fastest auditkit method {k}: {v['time_s']:.3f} s "
                f"(fit + all {res['n_train']} records) vs one epoch {v['epoch_same_process_s']:.3f} s (forward + "
                f"backward of the mean loss, batches of 512, median of three, timed in the same process just "
                f"before): {ratio[k]:.1f}×.")
        others = [f"{j} {ratio[j]:.1f}×" for j in sorted(ratio, key=ratio.get) if j != k]
        if others:
            line += " Others: " + ", ".join(others) + "."
        out.append(line)
    return out


def _row(res, kind, key, task):
    return ((res["models"].get(kind) or {}).get("rows", {}).get(key) or {}).get(task) or {}


def findings(res) -> list[str]:
    """What the tables show beyond the verdicts; numbers are read from the results, so they match the run."""
    out = []
    timeouts = sorted({f"{k} ({kind}, {task})" for kind, m in res["models"].items() for k, v in m["rows"].items()
                       for task, r in v.items() if (r or {}).get("status") == "timeout"})
    if timeouts:
        out.append("- Killed at the per-process time limit: " + ", ".join(timeouts) + ". On the MLP (p = 6,018) "
                   "`exact` builds the dense Hessian from p Hessian-vector passes over 32,561 records, and the "
                   "per-record solvers (CG, LiSSA) solve one system per record.")
    ek, kr = _row(res, "mlp", "auditkit/ekfac", "loo"), _row(res, "mlp", "kronfluence/ekfac", "loo")
    kb = _row(res, "mlp", "auditkit/kfac", "loo")
    if ek.get("pearson_self_loo") is not None and kr.get("pearson_self_loo") is not None:
        out.append(f"- EK-FAC differs between libraries by its eigenbasis: auditkit's default (`basis=\"weighted\"`: "
                   f"eigenvectors of Σ‖g_i‖²ã_iã_iᵀ and Σ‖ã_i‖²g_ig_iᵀ, one power step towards the nearest Kronecker "
                   f"product of each layer's curvature) reaches r = {ek['pearson_self_loo']:.3f} with retraining on "
                   f"the MLP (self-loss), against {kr['pearson_self_loo']:.3f} for Kronfluence's EK-FAC and "
                   f"{f(kb.get('pearson_self_loo'))} for K-FAC; on binary logistic regression it equals exact "
                   "influence (benchmarks/results/arnoldi_ekfac_accuracy.md).")
    ac, pc = _row(res, "logreg", "auditkit/cg", "test"), _row(res, "logreg", "pydvl/cg", "test")
    if ac.get("time_s") and pc.get("time_s"):
        out.append(f"- auditkit `cg` is slower than pyDVL's CG: on logistic regression, 200 test × train took "
                   f"{ac['time_s']:.1f} s against {pc['time_s']:.1f} s (relative tolerance 1e-8 against pyDVL's "
                   "1e-6, and Hessian-vector products by forward-over-reverse autodiff per chunk).")
    ex = _row(res, "mlp", "auditkit/exact", "loo")
    out += ["- dattri 0.3.0: `self_attribute` fails when the training loader has more than one batch (it adds a "
            "batch's scores to the whole output vector), so its Arnoldi and EK-FAC have no full self-influence "
            "number (they do for the 24 leave-one-out records, one batch); its CG and LiSSA exhaust the 10 GB "
            "address-space cap per process (they vmap Hessian-vector products over all right-hand sides at once); "
            "dattri sums one inverse-Hessian solve per batch of the cached loader, so the Hessian loader is one "
            "batch of all records.",
            "- pyDVL 0.10 needs its `influence` extra (dask.distributed) to import `pydvl.influence.torch`; its "
            "EK-FAC and dattri's LiSSA/Arnoldi fail on float64 models (float32 eigenvectors): run in float32.",
            "- The MLP leave-one-out ground truth is weak: the MLP was trained to ‖∇R‖∞ ≈ 2e-7 (L-BFGS), "
            "retraining warm-started to 1e-9 with at most 1,500 L-BFGS iterations; 24 records; pairwise "
            f"correlations are ≤ 0.3 for every method, and exact (r = {f(ex.get('pearson_self_loo'))}) is below "
            "Arnoldi rank 50. Differences of a few hundredths in r are not significant; 0.98 against 0.90 is.",
            "- Timing protocol: every timed self / test run is preceded, in its process, by an untimed run of the "
            "same call on the first 1,024 records (one-off costs out, for every library alike), and a self run "
            "by one epoch timed in the same process (median of three), which is the denominator of the epoch "
            "ratio. The machine is shared: ratios measured in one process are more reliable than times across "
            "processes.",
            "- The epoch ratios above are one pair each (one epoch, one fit + self-influence); on this shared "
            "2-core machine a single pair varies by ±30%. `benchmarks/epoch_ratio.py` repeats the pair 15 times "
            "in 3 fresh processes: its medians (benchmarks/results/epoch_ratio.md) are the measurement of record. "
            "For the logistic regression (an epoch of a 91→2 model is ≈ 0.7 kflop per record and mostly per-batch "
            "overhead) EK-FAC needs a 92×92 symmetric rank-k update and one triangular product per record "
            "(≈ 92² multiply-adds), no projection or correction (the output layer has one output direction)."]
    return out


def main(path=RESULTS / "peers.json"):
    res = json.loads(Path(path).read_text())
    v = res.get("versions", {})
    L = ["# auditkit against the peers on Adult (pyDVL, Kronfluence, dattri, captum)", "",
         f"One run of `benchmarks/peers/run.py` ({res['date']}, {res['machine']}), every process with one "
         f"thread, one after the other; 2-core machine shared with other jobs. n = {res['n_train']} training "
         "records (all of adult.data), 91 features (TabularFeaturizer), 200 test records from adult.test. "
         "Objective: mean cross-entropy + (l2/2)‖θ‖², l2 = 1e-3 on every parameter, float64 (dattri LiSSA/Arnoldi "
         "and pyDVL EK-FAC in float32: they fail on float64 models).", "",
         "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".", "",
         "Columns: **time** = fit + scoring inside the process (imports and data loading excluded), in seconds; "
         "`~` = scoring time extrapolated linearly from the first records (number scored in brackets); **wall** = "
         "the whole process; **RSS** = the process's peak resident memory (MiB, `wait4`). **r LOO**: Pearson "
         "with actual leave-one-out retraining on the 2,000-record subsample model (24 records removed one at a "
         "time: the 12 highest-loss and 12 at random; warm-started retraining with `auditkit.influence."
         "retrain_without`): *self* = each removed record's own loss change, *test mean* = change of the mean "
         "loss of the 200 test records, *pairs* = 200 × 24 test-record × removed-record loss changes. **r exact**: "
         "Pearson with auditkit `exact` on the full-data task (same records). Peers' scores converted to "
         "auditkit's convention ((1/n)·∇ℓ_testᵀH⁻¹∇ℓ_j, positive = removing j raises the loss): pyDVL "
         "(`InfluenceMode.Up`), dattri and Kronfluence (summed loss, damping = l2) divided by n, same sign "
         "(checked: median ratio to retraining ≈ 1 on logistic regression); captum Arnoldi uses the Hessian of "
         "the summed loss (hessian_reg = n·l2, scores used as they are); captum TracInCP (one checkpoint, "
         "learning rate 1, no Hessian) divided by n, so only its correlations mean anything.", ""]
    L += ["## Verdicts (issue 7, \"Done when\")", ""] + verdicts(res) + [""]
    L += ["## Findings and caveats", ""] + findings(res) + [""]
    for kind, m in res["models"].items():
        p = res["prepare"]["models"].get(kind, {})
        L += [f"## {MODEL_NAMES[kind]}", "",
              f"{p.get('n_params')} parameters; training (fit_model): {p.get('fit_full', {}).get('iterations')} "
              f"iterations, ‖∇R‖∞ = {f(p.get('fit_full', {}).get('grad_norm'), '{:.1e}')}; subsample model "
              f"‖∇R‖∞ = {f(p.get('fit_sub', {}).get('grad_norm'), '{:.1e}')}; train accuracy "
              f"{f(p.get('train_accuracy'))}. One training epoch: **{f(m.get('epoch_s'), '{:.3f}')} s**.", ""]
        for task, title in (("self", "(i) fit + self-influence of every training record"),
                            ("test", "(ii) fit + influence of 200 test × all training records"),
                            ("loo", "(iii) accuracy against leave-one-out retraining (2,000-record subsample)")):
            L += [f"### {title}", ""]
            if task == "loo":
                L += ["| library / method | r self | r test mean | r pairs | median predicted/actual (self) | "
                      "time s | RSS MiB | status |", "|---|---|---|---|---|---|---|---|"]
            else:
                L += ["| library / method | time s | wall s | RSS MiB | r exact | status |",
                      "|---|---|---|---|---|---|"]
            for key, tasks in m["rows"].items():
                r = tasks.get(task)
                if r is None:
                    continue
                if task == "loo":
                    L.append(f"| {key} | {f(r.get('pearson_self_loo'))} | {f(r.get('pearson_testmean_loo'))} | "
                             f"{f(r.get('pearson_pairs_loo'))} | {f(r.get('scale_self_loo'), '{:.3g}')} | "
                             f"{cell_time(r)} | {f(r.get('rss_mib'), '{:.0f}')} | {status(r)} |")
                else:
                    L.append(f"| {key} | {cell_time(r)} | {f(r.get('wall_s'), '{:.1f}')} | "
                             f"{f(r.get('rss_mib'), '{:.0f}')} | "
                             f"{f(r.get('pearson_vs_exact'))} | {status(r)} |")
            L.append("")
    out = Path(path).with_suffix(".md")
    out.write_text("\n".join(L) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
