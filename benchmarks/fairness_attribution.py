"""Does fairness attribution find planted bias? Influence on a selection-rate gap vs actual retraining.

What it measures
----------------
For Statlog German Credit and UCI Adult, a logistic regression (``torch.nn.Linear(d, 2).double()``)
trained with ``auditkit.fit_model`` to a minimum of ``mean cross-entropy + (l2/2)·‖θ‖²``:

1. **Planted bias.** Among the *training* records of one group (sex = female) whose label is the
   favourable outcome (good credit / income >50K), a seeded fraction is flipped to the unfavourable
   label (``numpy.random.default_rng(PLANT_SEED)``); ``k`` = the number flipped. The test set is left
   as it is. The model is trained on the poisoned training set.
2. **The gap.** On the test set, the selection-rate surrogate gap
   ``gap = mean_{male} p_fav − mean_{female} p_fav`` (``gap_measure("selection_rate", ...)``, positive =
   women worse off) and the hard selection-rate gap on argmax predictions (``hard_gap``).
3. **Attribution.** ``e = InfluenceEngine(model, "cross_entropy", l2=L2, method="exact")
   .influence_on(measure, X_test, y_test)``: ``e_j`` ≈ gap after removing training record j and
   retraining, minus the gap now (negative = j drives the gap). Drivers = the k most negative ``e_j``.
4. **Ranking of the planted records** among the drivers: AUC of ``−e`` (planted vs not), recall of
   the planted records in the top k and top 2k, against chance (AUC 0.5, recall k/n and 2k/n); for
   comparison the same for a mislabel detector that ranks by training loss.
5. **Actual retraining** (``auditkit.influence.retrain_without``, warm start, same objective) after
   removing (a) the top-k drivers, (b) the k planted records, (c) k random records (5 seeded draws),
   (d) the k highest-loss training records; and the removal curve of the drivers at k/4, k/2, k, 2k.
   For each: the actual surrogate and hard gap, the predicted surrogate gap ``gap + Σ_{j removed} e_j``
   and the relative error ``|predicted change − actual change| / |actual change|``.

Acceptance targets (fixed before the run; printed as PASS / FAIL, never tuned after the fact):
removing the top-k drivers shrinks the actual surrogate gap at least as much as removing the k planted
records, and more than removing k random records (every draw) and the k highest-loss records; the
predicted change for the top-k drivers is within 25% of the actual change; the planted AUC is ≥ 0.75.

How to run
----------
::

    .venv/bin/python benchmarks/fairness_attribution.py            # full run, about two minutes
    .venv/bin/python benchmarks/fairness_attribution.py --quick    # German credit only, 2 random draws
    .venv/bin/python benchmarks/fairness_attribution.py --out DIR  # write results elsewhere

It writes ``fairness_attribution.json`` (every number, the settings, the environment and the timings)
and ``fairness_attribution.md`` (tables and the PASS/FAIL lines) to ``--out`` (default
``benchmarks/results``). This is a benchmark, not a test: it is not timed and not part of the test run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch.func import functional_call, grad

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import auditkit as ak  # noqa: E402
from auditkit.audits.fairness.attribution import gap_measure, hard_gap  # noqa: E402
from auditkit.data import DataSpec, prepare_splits  # noqa: E402
from auditkit.influence import retrain_without  # noqa: E402
from examples.datasets import GERMAN_CATEGORICAL, GERMAN_NUMERIC, load_german_credit, split  # noqa: E402

LOSS = "cross_entropy"
KIND = "selection_rate"
PLANT_SEED = 2024          # which favourable female training records get flipped
MODEL_SEED = 0             # torch.manual_seed before building the model (fit_model converges to the minimum)
RANDOM_SEEDS = [0, 1, 2, 3, 4]  # the k-random-records baseline
SPLIT_SEED = 0             # German credit train/test split (examples/datasets.split)
TARGET_REL_ERROR = 0.25
TARGET_AUC = 0.75          # "well above 0.5"
ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital_status", "occupation",
                 "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
                 "native_country", "income_per_year"]

#: per data set: l2 and the planted fraction, fixed before the run
CONFIG = {
    "german_credit": {"l2": 0.01, "plant_fraction": 0.25},
    "adult": {"l2": 1e-3, "plant_fraction": 0.15},
}


# ----------------------------------------------------------------------------------------- data
def german_credit() -> dict:
    """Statlog German Credit, the examples' stratified 75/25 split (seed 0); sex decoded from status_sex."""
    df = load_german_credit()
    train, test = split(df, test_fraction=0.25, seed=SPLIT_SEED)
    spec = DataSpec(target="target", sensitive=("sex",), id_column="id", favourable=1,
                    features=tuple(GERMAN_NUMERIC + GERMAN_CATEGORICAL))
    return {"train": train, "test": test, "spec": spec, "female": "female", "male": "male",
            "favourable": 1, "unfavourable": 0,
            "source": "examples/german_credit/data/german.data via examples.datasets.load_german_credit; "
                      "stratified 75/25 split examples.datasets.split(seed=0); features = GERMAN_NUMERIC + "
                      "GERMAN_CATEGORICAL (sex is a feature, status_sex is not)"}


def adult() -> dict:
    """UCI Adult: the original adult.data (train) / adult.test (test) split, all rows kept."""
    data = ROOT / "examples" / "adult_income" / "data"
    options = {"names": ADULT_COLUMNS, "skipinitialspace": True, "na_values": "?"}
    train = pd.read_csv(data / "adult.data", **options).drop(columns="fnlwgt")
    test = pd.read_csv(data / "adult.test", skiprows=1, **options).drop(columns="fnlwgt")
    test["income_per_year"] = test["income_per_year"].str.rstrip(".")
    for frame, name in ((train, "train"), (test, "test")):
        frame.insert(0, "id", [f"{name}-{i}" for i in range(len(frame))])
    spec = DataSpec(target="income_per_year", sensitive=("sex",), id_column="id", favourable=">50K")
    return {"train": train, "test": test, "spec": spec, "female": "Female", "male": "Male",
            "favourable": ">50K", "unfavourable": "<=50K",
            "source": "examples/adult_income/data/adult.data (train, all 32,561 rows) and adult.test (test, "
                      "16,281 rows; header line skipped, trailing '.' of labels removed); skipinitialspace, "
                      "na_values '?', fnlwgt dropped; rows with missing values kept (missing = an explicit "
                      "category level); features = all 13 remaining columns including sex and race"}


LOADERS = {"german_credit": german_credit, "adult": adult}


def plant(train: pd.DataFrame, target: str, female: str, favourable, unfavourable, fraction: float):
    """Flip ``fraction`` of the favourable female training records to unfavourable (seeded)."""
    eligible = np.flatnonzero(((train["sex"] == female) & (train[target] == favourable)).to_numpy())
    k = int(round(fraction * len(eligible)))
    chosen = np.sort(np.random.default_rng(PLANT_SEED).choice(eligible, size=k, replace=False))
    poisoned = train.copy()
    poisoned.loc[poisoned.index[chosen], target] = unfavourable
    return poisoned, chosen, len(eligible)


# ----------------------------------------------------------------------------------------- model
def objective_grad_norm(model, X, y, l2, keep=None) -> float:
    """``‖∇R(θ)‖_∞`` of ``mean loss + (l2/2)‖θ‖²`` on the kept records: did the (re)training converge."""
    if keep is not None:
        X, y = X[keep], y[keep]
    theta = {n: p.detach() for n, p in model.named_parameters()}

    def objective(params):
        value = F.cross_entropy(functional_call(model, params, (X,)), y)
        return value + 0.5 * l2 * sum((t * t).sum() for t in params.values())

    g = grad(objective)(theta)
    return float(max(v.abs().max() for v in g.values()))


class Evaluator:
    """The surrogate and hard selection-rate gaps (and context numbers) of a model on the test set."""

    def __init__(self, X_test, y_test, dis, adv, favourable: int):
        self.X, self.y, self.dis, self.adv, self.fav = X_test, y_test, dis, adv, favourable
        self.measure = gap_measure(KIND, dis, adv, loss=LOSS, favourable=favourable)

    def __call__(self, model) -> dict:
        model.eval()
        with torch.no_grad():
            out = model(self.X)
        proba = torch.softmax(out, dim=-1).numpy()
        losses = F.cross_entropy(out, self.y, reduction="none").numpy()
        y = self.y.numpy()
        chosen = proba.argmax(axis=1) == self.fav
        p = proba[:, self.fav]
        return {"gap": float(self.measure(out, self.y)),
                "hard_gap": hard_gap(KIND, proba, y, losses, self.dis, self.adv, self.fav),
                "mean_p_female": float(p[self.dis].mean()), "mean_p_male": float(p[self.adv].mean()),
                "selection_rate_female": float(chosen[self.dis].mean()),
                "selection_rate_male": float(chosen[self.adv].mean()),
                "test_accuracy": float((proba.argmax(axis=1) == y).mean())}


# ----------------------------------------------------------------------------------------- run
def run_dataset(name: str, n_random: int) -> dict:
    cfg = CONFIG[name]
    l2, fraction = cfg["l2"], cfg["plant_fraction"]
    timings = {}
    t0 = time.perf_counter()
    data = LOADERS[name]()
    spec = data["spec"]
    poisoned, planted, n_eligible = plant(data["train"], spec.target, data["female"], data["favourable"],
                                          data["unfavourable"], fraction)
    splits = prepare_splits({"train": poisoned, "test": data["test"]}, spec)
    train, test = splits["train"], splits["test"]
    fav = int(train.favourable_index)
    X = torch.tensor(train.X, dtype=torch.float64)
    y = torch.tensor(train.y, dtype=torch.long)
    y_clean = y.clone()
    y_clean[torch.as_tensor(planted)] = fav
    X_test = torch.tensor(test.X, dtype=torch.float64)
    y_test = torch.tensor(test.y, dtype=torch.long)
    dis = test.groups["sex"].to_numpy() == data["female"]
    adv = test.groups["sex"].to_numpy() == data["male"]
    train_sex = train.groups["sex"].to_numpy()
    n, d, k = len(y), X.shape[1], len(planted)
    timings["load_and_featurize"] = time.perf_counter() - t0
    evaluate = Evaluator(X_test, y_test, dis, adv, fav)

    def fresh_model():
        torch.manual_seed(MODEL_SEED)
        return torch.nn.Linear(d, 2).double()

    # the model trained on the clean labels: how big the gap was before planting (context only)
    t0 = time.perf_counter()
    clean = fresh_model()
    clean_fit = ak.fit_model(clean, X, y_clean, loss=LOSS, l2=l2)
    clean_eval = evaluate(clean)
    timings["train_clean"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = fresh_model()
    fit = ak.fit_model(model, X, y, loss=LOSS, l2=l2)
    timings["train_poisoned"] = time.perf_counter() - t0
    if not fit["converged"]:
        raise RuntimeError(f"{name}: training did not converge ({fit})")
    base = evaluate(model)
    gap = base["gap"]
    print(f"\n== {name}: n_train={n}, n_test={len(y_test)}, d={d}, l2={l2:g}; planted k={k} "
          f"({fraction:.0%} of {n_eligible} favourable female training records)", flush=True)
    print(f"   gap (surrogate / hard): clean model {clean_eval['gap']:.4f} / {clean_eval['hard_gap']:.4f}; "
          f"poisoned model {gap:.4f} / {base['hard_gap']:.4f}", flush=True)

    t0 = time.perf_counter()
    engine = ak.InfluenceEngine(model, LOSS, l2=l2, method="exact").fit(X, y)
    timings["engine_fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    e = engine.influence_on(evaluate.measure, X_test, y_test)
    timings["influence_on"] = time.perf_counter() - t0
    order = np.argsort(e, kind="stable")
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(1, n + 1)          # 1 = the strongest driver

    is_planted = np.zeros(n, dtype=bool)
    is_planted[planted] = True
    with torch.no_grad():
        train_loss = F.cross_entropy(model(X), y, reduction="none").numpy()
    by_loss = np.argsort(-train_loss, kind="stable")
    female_unfav = (train_sex == data["female"]) & (train.y != fav)

    def recall(ranking, m):
        return float(is_planted[ranking[:m]].sum() / k)

    ranking = {
        "auc_planted_minus_e": float(roc_auc_score(is_planted, -e)),
        "recall_top_k": recall(order, k), "recall_top_2k": recall(order, 2 * k),
        "chance_auc": 0.5, "chance_recall_top_k": k / n, "chance_recall_top_2k": 2 * k / n,
        "planted_rank_median": float(np.median(rank[planted])),
        "planted_rank_quartiles": [float(q) for q in np.percentile(rank[planted], [25, 75])],
        "planted_negative_e": int((e[planted] < 0).sum()),
        # the planted records hide among the female records labelled unfavourable: the harder comparison
        "auc_within_female_unfavourable": float(roc_auc_score(is_planted[female_unfav], -e[female_unfav])),
        "n_female_unfavourable": int(female_unfav.sum()),
        "chance_recall_top_k_within_female_unfavourable": k / int(female_unfav.sum()),
        "loss_baseline": {"auc_planted_loss": float(roc_auc_score(is_planted, train_loss)),
                          "recall_top_k": recall(by_loss, k), "recall_top_2k": recall(by_loss, 2 * k)},
    }
    drivers = order[:k]

    def cells(idx) -> dict:
        """How many of the records ``idx`` fall in each (sex / label) cell, planted ones apart."""
        out = {}
        for j in idx:
            key = f"{train_sex[j]} / {train.classes[train.y[j]]}" + (" (planted)" if is_planted[j] else "")
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    ranking["top_k_driver_cells"] = cells(drivers)
    ranking["highest_loss_cells"] = cells(by_loss[:k])
    print(f"   ranking: AUC(−e) planted {ranking['auc_planted_minus_e']:.3f} (loss ranking "
          f"{ranking['loss_baseline']['auc_planted_loss']:.3f}); recall top k {ranking['recall_top_k']:.3f}, "
          f"top 2k {ranking['recall_top_2k']:.3f} (chance {k / n:.4f}, {2 * k / n:.4f})", flush=True)

    def removal(label: str, idx: np.ndarray) -> dict:
        t = time.perf_counter()
        idx = np.asarray(idx, dtype=int)
        retrained = retrain_without(model, X, y, idx, loss=LOSS, l2=l2)
        keep = torch.ones(n, dtype=torch.bool)
        keep[torch.as_tensor(idx)] = False
        after = evaluate(retrained)
        predicted_change = float(e[idx].sum())
        actual_change = after["gap"] - gap
        row = {"removed": label, "n_removed": int(len(idx)), "n_planted_removed": int(is_planted[idx].sum()),
               "actual_gap": after["gap"], "actual_change": actual_change,
               "actual_hard_gap": after["hard_gap"], "actual_hard_change": after["hard_gap"] - base["hard_gap"],
               "predicted_gap": gap + predicted_change, "predicted_change": predicted_change,
               "relative_error": abs(predicted_change - actual_change) / abs(actual_change) if actual_change else None,
               "test_accuracy": after["test_accuracy"],
               "retrain_grad_norm": objective_grad_norm(retrained, X, y, l2, keep),
               "seconds": time.perf_counter() - t}
        print(f"   remove {label:<26s} n={len(idx):5d}: actual gap {after['gap']:.4f} (Δ {actual_change:+.4f}), "
              f"predicted {gap + predicted_change:.4f} (Δ {predicted_change:+.4f}), hard {after['hard_gap']:.4f}"
              f"  [{row['seconds']:.1f}s]", flush=True)
        return row

    t0 = time.perf_counter()
    top = removal("top-k drivers", drivers)
    planted_row = removal("k planted", planted)
    random_rows = [removal(f"k random (seed {s})", np.random.default_rng(s).choice(n, size=k, replace=False))
                   for s in RANDOM_SEEDS[:n_random]]
    loss_row = removal("k highest-loss", by_loss[:k])
    curve = []
    for m in sorted({max(1, round(k / 4)), max(1, round(k / 2)), k, 2 * k}):
        row = top if m == k else removal(f"top-{m} drivers", order[:m])
        curve.append({"k": m, **{key: row[key] for key in ("predicted_gap", "actual_gap", "predicted_change",
                                                           "actual_change", "relative_error", "actual_hard_gap",
                                                           "n_planted_removed")}})
    timings["retraining"] = time.perf_counter() - t0

    rand_change = np.array([r["actual_change"] for r in random_rows])
    rand_gap = np.array([r["actual_gap"] for r in random_rows])
    rand_hard = np.array([r["actual_hard_gap"] for r in random_rows])
    ddof = 1 if len(random_rows) > 1 else 0
    random_summary = {"draws": len(random_rows), "seeds": RANDOM_SEEDS[:n_random],
                      "actual_gap_mean": float(rand_gap.mean()), "actual_gap_sd": float(rand_gap.std(ddof=ddof)),
                      "actual_change_mean": float(rand_change.mean()),
                      "actual_change_sd": float(rand_change.std(ddof=ddof)),
                      "actual_hard_gap_mean": float(rand_hard.mean()),
                      "actual_hard_gap_sd": float(rand_hard.std(ddof=ddof)),
                      "predicted_change_mean": float(np.mean([r["predicted_change"] for r in random_rows]))}
    checks = [
        {"name": "top-k drivers shrink the gap at least as much as the k planted records",
         "value": f"Δ {top['actual_change']:+.4f} vs {planted_row['actual_change']:+.4f}",
         "passed": bool(top["actual_change"] <= planted_row["actual_change"])},
        {"name": f"top-k drivers shrink the gap more than k random records (every one of {len(random_rows)} draws)",
         "value": f"Δ {top['actual_change']:+.4f} vs random min {rand_change.min():+.4f}, "
                  f"mean {rand_change.mean():+.4f}",
         "passed": bool(top["actual_change"] < rand_change.min())},
        {"name": "top-k drivers shrink the gap more than the k highest-loss records",
         "value": f"Δ {top['actual_change']:+.4f} vs {loss_row['actual_change']:+.4f}",
         "passed": bool(top["actual_change"] < loss_row["actual_change"])},
        {"name": f"predicted change for the top-k drivers within {TARGET_REL_ERROR:.0%} of the actual change",
         "value": f"relative error {top['relative_error']:.3f} (predicted Δ {top['predicted_change']:+.4f}, "
                  f"actual Δ {top['actual_change']:+.4f})",
         "passed": bool(top["relative_error"] is not None and top["relative_error"] <= TARGET_REL_ERROR)},
        {"name": f"planted AUC of −e well above 0.5 (≥ {TARGET_AUC})",
         "value": f"AUC {ranking['auc_planted_minus_e']:.3f}",
         "passed": bool(ranking["auc_planted_minus_e"] >= TARGET_AUC)},
    ]
    for c in checks:
        print(f"   {'PASS' if c['passed'] else 'FAIL'}: {name}: {c['name']} — {c['value']}", flush=True)

    return {
        "dataset": name, "source": data["source"], "l2": l2, "plant_fraction": fraction, "plant_seed": PLANT_SEED,
        "model_seed": MODEL_SEED, "k": k, "n_eligible_for_planting": n_eligible,
        "n_train": n, "n_test": int(len(y_test)), "n_features": int(d), "n_params": int(2 * d + 2),
        "classes": [str(c) for c in train.classes], "favourable": str(train.classes[fav]),
        "train_counts": {"female": int((train_sex == data["female"]).sum()),
                         "male": int((train_sex == data["male"]).sum()),
                         "female_favourable_after_planting": int(((train_sex == data["female"])
                                                                  & (train.y == fav)).sum())},
        "test_counts": {"female": int(dis.sum()), "male": int(adv.sum())},
        "fit": fit, "clean_fit": clean_fit, "clean_model": clean_eval, "poisoned_model": base,
        "gap": gap, "hard_gap": base["hard_gap"],
        "effects": {"n_negative": int((e < 0).sum()), "min": float(e.min()), "max": float(e.max()),
                    "sum": float(e.sum()), "sum_top_k": float(e[drivers].sum()),
                    "sum_planted": float(e[planted].sum())},
        "engine": _jsonable(engine.summary()),
        "ranking": ranking, "planted_ranks": sorted(int(r) for r in rank[planted]),
        "removals": {"top_k_drivers": top, "planted": planted_row, "random": random_rows,
                     "random_summary": random_summary, "highest_loss": loss_row},
        "removal_curve": curve, "checks": checks, "timings_seconds": timings,
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def run(args) -> dict:
    datasets = ["german_credit"] if args.quick else ["german_credit", "adult"]
    n_random = 2 if args.quick else len(RANDOM_SEEDS)
    results = [run_dataset(name, n_random) for name in datasets]
    import fairlearn
    import scipy
    import sklearn
    return {
        "benchmark": "fairness_attribution",
        "quick": bool(args.quick),
        "convention": "e_j ≈ (surrogate gap after removing training record j and retraining) − (gap now), "
                      "= (1/n)·∇gapᵀ H⁻¹ ∇ℓ_j; gap = mean_{male} p_fav − mean_{female} p_fav on the test set "
                      "(positive = women worse off). Negative e_j: j drives the gap. Removing a set R is "
                      "predicted to change the gap by Σ_{j∈R} e_j.",
        "setup": {"loss": LOSS, "surrogate": KIND, "model": "torch.nn.Linear(d, 2).double(), logistic regression",
                  "training": "auditkit.fit_model (L-BFGS then Newton to ‖∇R‖∞ ≤ 1e-9)",
                  "engine": "auditkit.InfluenceEngine(model, 'cross_entropy', l2=L2, method='exact'), damping 0",
                  "retraining": "auditkit.influence.retrain_without, warm start, tol=1e-9",
                  "plant_seed": PLANT_SEED, "model_seed": MODEL_SEED, "random_seeds": RANDOM_SEEDS[:n_random],
                  "split_seed_german_credit": SPLIT_SEED, "config": CONFIG,
                  "targets": {"relative_error_top_k": TARGET_REL_ERROR, "planted_auc": TARGET_AUC}},
        "environment": {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                        "python": platform.python_version(), "torch": torch.__version__,
                        "numpy": np.__version__, "pandas": pd.__version__, "scipy": scipy.__version__,
                        "scikit-learn": sklearn.__version__, "fairlearn": fairlearn.__version__,
                        "auditkit": ak.__version__, "platform": platform.platform(),
                        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "results": results,
        "all_passed": all(c["passed"] for r in results for c in r["checks"]),
    }


# ----------------------------------------------------------------------------------------- report
def _f(x, digits: int = 4, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def write_markdown(report: dict, path: Path) -> None:
    env = report["environment"]
    lines = [
        "# Fairness attribution: finding planted bias, checked by retraining",
        "",
        f"Generated by `benchmarks/fairness_attribution.py`{' --quick' if report['quick'] else ''} on "
        f"{env['date']} (torch {env['torch']}, numpy {env['numpy']}, scikit-learn {env['scikit-learn']}, "
        f"{env['cpu_count']} CPUs, {env['torch_threads']} torch thread; {env['platform']}).",
        "",
        "**Sign convention.** The gap is the selection-rate surrogate on the test set, "
        "`gap = mean_{male} p(favourable) − mean_{female} p(favourable)` (positive = women worse off); the hard "
        "gap is the same on argmax predictions. `e_j` ≈ the change of the gap when training record j is removed "
        "and the model retrained (gap after − gap now; the 1/n is already in it, so `e_j` is in the units of the "
        "gap). **Negative `e_j` = record j drives the gap**: removing it would shrink it. Removing a set R is "
        "predicted to change the gap by `Σ_{j∈R} e_j`, so the predicted gap is `gap + Σ e_j`. Drivers = the k "
        "most negative `e_j`. Relative error = `|predicted change − actual change| / |actual change|`.",
        "",
        "**Setup.** Logistic regression `Linear(d, 2).double()` trained with `auditkit.fit_model` "
        "(mean cross-entropy + (l2/2)‖θ‖², to ‖∇R‖∞ ≤ 1e-9); planted bias: a seeded fraction "
        f"(`default_rng({PLANT_SEED})`) of the female training records with the favourable label flipped to the "
        "unfavourable label, k = the number flipped; the test set is untouched. `InfluenceEngine(..., "
        "method='exact')`, `influence_on(gap)` over the test set. Retraining: `retrain_without` (warm start, "
        "same objective) after each removal.",
        "",
    ]
    for r in report["results"]:
        rk, rm = r["ranking"], r["removals"]
        rs = rm["random_summary"]
        lines += [
            f"## {r['dataset']}",
            "",
            f"{r['source']}. n_train = {r['n_train']}, n_test = {r['n_test']} ({r['test_counts']['female']} female, "
            f"{r['test_counts']['male']} male), d = {r['n_features']} features, l2 = {r['l2']:g}. "
            f"**Planted k = {r['k']}** ({r['plant_fraction']:.0%} of the {r['n_eligible_for_planting']} favourable "
            f"female training records). Gap of the model trained on the clean labels: surrogate "
            f"{_f(r['clean_model']['gap'])}, hard {_f(r['clean_model']['hard_gap'])}; **poisoned model: surrogate "
            f"{_f(r['gap'])}, hard {_f(r['hard_gap'])}** "
            f"(test accuracy {_f(r['poisoned_model']['test_accuracy'], 3)}).",
            "",
            "| ranking of the planted records | influence (−e) | loss ranking (mislabel detector) | chance |",
            "|---|---|---|---|",
            f"| AUC, planted vs all other training records | {_f(rk['auc_planted_minus_e'], 3)} "
            f"| {_f(rk['loss_baseline']['auc_planted_loss'], 3)} | 0.5 |",
            f"| recall in the top k | {_f(rk['recall_top_k'], 3)} | {_f(rk['loss_baseline']['recall_top_k'], 3)} "
            f"| {_f(rk['chance_recall_top_k'], 4)} |",
            f"| recall in the top 2k | {_f(rk['recall_top_2k'], 3)} | {_f(rk['loss_baseline']['recall_top_2k'], 3)} "
            f"| {_f(rk['chance_recall_top_2k'], 4)} |",
            f"| AUC among the {rk['n_female_unfavourable']} female training records labelled unfavourable "
            f"| {_f(rk['auc_within_female_unfavourable'], 3)} | | 0.5 |",
            "",
            f"Median rank of a planted record when all training records are ranked by e (1 = most negative): "
            f"{rk['planted_rank_median']:.0f} of {r['n_train']} "
            f"(quartiles {rk['planted_rank_quartiles'][0]:.0f}–{rk['planted_rank_quartiles'][1]:.0f}); "
            f"{rk['planted_negative_e']} of {r['k']} planted records have e < 0. Top-k drivers by (sex / label): "
            + ", ".join(f"{key}: {v}" for key, v in rk["top_k_driver_cells"].items()) + ".",
            "",
            f"| removed (k = {r['k']}) | planted among them | actual gap (Δ) | predicted gap (Δ) | relative error "
            "| actual hard gap | test accuracy |",
            "|---|---|---|---|---|---|---|",
            f"| nothing | — | {_f(r['gap'])} | — | — | {_f(r['hard_gap'])} "
            f"| {_f(r['poisoned_model']['test_accuracy'], 3)} |",
        ]
        for key, label in (("top_k_drivers", "(a) top-k drivers"), ("planted", "(b) the k planted records")):
            row = rm[key]
            lines.append(f"| {label} | {row['n_planted_removed']} | {_f(row['actual_gap'])} "
                         f"({_f(row['actual_change'], signed=True)}) | {_f(row['predicted_gap'])} "
                         f"({_f(row['predicted_change'], signed=True)}) | {_f(row['relative_error'], 3)} "
                         f"| {_f(row['actual_hard_gap'])} | {_f(row['test_accuracy'], 3)} |")
        lines.append(f"| (c) k random, mean ± sd of {rs['draws']} draws | "
                     f"{np.mean([x['n_planted_removed'] for x in rm['random']]):.1f} | "
                     f"{_f(rs['actual_gap_mean'])} ± {_f(rs['actual_gap_sd'])} "
                     f"({_f(rs['actual_change_mean'], signed=True)}) "
                     f"| ({_f(rs['predicted_change_mean'], signed=True)}) "
                     f"| — | {_f(rs['actual_hard_gap_mean'])} ± {_f(rs['actual_hard_gap_sd'])} | |")
        row = rm["highest_loss"]
        lines += [f"| (d) the k highest-loss records | {row['n_planted_removed']} | {_f(row['actual_gap'])} "
                  f"({_f(row['actual_change'], signed=True)}) | {_f(row['predicted_gap'])} "
                  f"({_f(row['predicted_change'], signed=True)}) | {_f(row['relative_error'], 3)} "
                  f"| {_f(row['actual_hard_gap'])} | {_f(row['test_accuracy'], 3)} |",
                  "",
                  "Removal curve of the drivers (surrogate gap; relative error of the change):",
                  "",
                  "| drivers removed | planted among them | predicted gap | actual gap | relative error "
                  "| actual hard gap |",
                  "|---|---|---|---|---|---|"]
        for c in r["removal_curve"]:
            lines.append(f"| {c['k']} | {c['n_planted_removed']} | {_f(c['predicted_gap'])} | {_f(c['actual_gap'])} "
                         f"| {_f(c['relative_error'], 3)} | {_f(c['actual_hard_gap'])} |")
        lines += ["", "**Acceptance.**", ""]
        for c in r["checks"]:
            lines.append(f"- **{'PASS' if c['passed'] else 'FAIL'}**: {c['name']} — {c['value']}")
        lines += ["", "Timings (s): " + ", ".join(f"{key} {v:.1f}" for key, v in r["timings_seconds"].items())
                  + f". Largest ‖∇R‖∞ after a retraining: "
                  f"{max(x['retrain_grad_norm'] for x in _all_rows(rm)):.1e}.", ""]
    lines += ["## Reading the results", "", _interpretation(report), ""]
    path.write_text("\n".join(lines))


def _all_rows(removals: dict) -> list[dict]:
    return [removals["top_k_drivers"], removals["planted"], removals["highest_loss"], *removals["random"]]


def _interpretation(report: dict) -> str:
    """Paragraphs written from the measured numbers (nothing here is hard-coded about the outcome)."""
    parts = []
    for r in report["results"]:
        rm, rk = r["removals"], r["ranking"]
        top, pl, hl, rs = rm["top_k_drivers"], rm["planted"], rm["highest_loss"], rm["random_summary"]
        failed = [c["name"] for c in r["checks"] if not c["passed"]]
        curve = r["removal_curve"]
        under = all(abs(c["predicted_change"]) < abs(c["actual_change"]) for c in curve)
        errors = ", ".join(f"{_f(c['relative_error'], 2)} at {c['k']}" for c in curve)
        text = (
            f"**{r['dataset']}.** Planting {r['k']} flipped labels moved the surrogate gap from "
            f"{_f(r['clean_model']['gap'])} (model trained on the clean labels) to {_f(r['gap'])}, the hard gap from "
            f"{_f(r['clean_model']['hard_gap'])} to {_f(r['hard_gap'])}. Influence ranks the planted records high "
            f"(AUC {_f(rk['auc_planted_minus_e'], 3)} against {_f(rk['loss_baseline']['auc_planted_loss'], 3)} for "
            f"ranking by training loss; {rk['recall_top_k']:.0%} of them in the top k against "
            f"{rk['chance_recall_top_k']:.1%} by chance), but the top-k drivers are not only planted records: the "
            f"drivers are the records whose removal shrinks the gap most, whatever their origin, and the rest are "
            f"mostly real female records labelled unfavourable and male records labelled favourable "
            f"({', '.join(f'{key}: {v}' for key, v in rk['top_k_driver_cells'].items())}). Removing the top-k drivers "
            f"changed the gap by {_f(top['actual_change'], signed=True)} (predicted "
            f"{_f(top['predicted_change'], signed=True)}, relative error {_f(top['relative_error'], 3)}), against "
            f"{_f(pl['actual_change'], signed=True)} for the planted records, "
            f"{_f(rs['actual_change_mean'], signed=True)}"
            f" ± {_f(rs['actual_change_sd'])} for random records and {_f(hl['actual_change'], signed=True)} for the "
            f"highest-loss records. Removing the planted records does not undo the planting (that would need their "
            f"labels restored, not the records dropped): it recovers "
            f"{-pl['actual_change'] / (r['gap'] - r['clean_model']['gap']):.0%} of the increase. Relative error of the "
            f"first-order prediction along the removal curve: {errors}"
            + ("; the prediction underestimates the actual change at every point, increasingly so as more records "
               "are removed (the known behaviour of first-order influence for group removals: the drivers are "
               "chosen for a large effect, and the model moves further than one Newton step predicts)"
               if under else "") + ". ")
        if top["relative_error"] is not None and top["relative_error"] > 0.8 * TARGET_REL_ERROR:
            text += (f"The {TARGET_REL_ERROR:.0%} target for the top-k drivers is met only narrowly here "
                     f"({_f(top['relative_error'], 3)}). ")
        if hl["actual_change"] > 0:
            text += ("Removing the k highest-loss records widens the gap; they are "
                     + ", ".join(f"{key}: {v}" for key, v in rk["highest_loss_cells"].items())
                     + " (records whose label surprises the model; those that narrow the gap outweigh the "
                       "planted ones among them). ")
        text += ("All acceptance targets are met." if not failed else "Not met: " + "; ".join(failed) + ".")
        parts.append(text)
    return "\n\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: German credit only, 2 random draws")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="folder for fairness_attribution.json and .md (default: benchmarks/results)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    report = run(args)
    report["total_seconds"] = time.perf_counter() - start
    report = _jsonable(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fairness_attribution.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    write_markdown(report, args.out / "fairness_attribution.md")
    print(f"\n{'ALL PASSED' if report['all_passed'] else 'SOME TARGETS FAILED'}; wrote "
          f"{args.out / 'fairness_attribution.json'} and {args.out / 'fairness_attribution.md'} "
          f"in {report['total_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
