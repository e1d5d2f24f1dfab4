"""Do the privacy and data-quality audits find what was planted? Mislabels, canaries, membership, flag rates.

What it measures (all on real data, every model trained with ``auditkit.fit_model`` to a minimum of
``mean cross-entropy + (l2/2)·‖θ‖²``, float64; influence with ``InfluenceEngine(method="exact")``)
------------------------------------------------------------------------------------------------
1. **Mislabels** (data-quality audit). UCI heart disease (CSV of the examples, loaded as the tests load
   it; 560 train / 180 test / 180 holdout, permutation seed 0; sensitive: sex, age band <55 / 55+) and
   Statlog German credit (``examples.datasets.load_german_credit``; 600 / 200 / 200, permutation seed 0;
   sensitive: sex). 10% of the training labels flipped at random (``default_rng(seed)``): evidence seeds
   20..29, pre-registered (``PREREGISTRATION``, committed before they were first run); seeds 15..19, seen
   while studying the rule, are rerun and reported apart, never in a verdict. Round 1 (the engine-only rule,
   ``PREREGISTRATION_ROUND1``: evidence seeds 5..14, development 0..4) is carried over unchanged from the
   results file it was stored in (``mislabels_earlier_rounds``).
   Models: logistic regression ``Linear(d, 2)`` at l2 = 0.01; MLP ``Linear(d, 32)-Tanh-Linear(32, 2)``
   at l2 = 0.01 and at l2 = 0.001 (over-fit); ``torch.manual_seed(seed)`` before building a model.
   The plugin is given a training function (``warm_start_trainer``, memoised: the benchmark's out-of-fold
   losses reuse the plugin's fold models). Rankings of the training records: (a) the default data-quality
   ranking (``run_plugin("data_quality")``; the full order rebuilt with ``default_order(loss, s̃, o)``, o the
   out-of-fold losses of ``out_of_fold_losses``, and checked against the plugin's suspects), (b) training
   loss, (c) plain self-influence, (d) leverage-corrected self-influence, and for reference (e) the
   estimated held-out loss ``loss + s̃`` alone and, for the logistic regression, (f) the loss of the noisy
   label under a model trained on the *clean* labels (an
   oracle that never saw the flips: how separable the flips are at all on this data), (g) the engine-only
   default ``suspicion_order(loss, s̃)`` (the default without a training function), (h) the out-of-fold loss
   alone, (i) misfit records by loss then out-of-fold loss, (j) the rank mean of loss and out-of-fold loss.
   For each: flipped records found in the top 10% and top 20% (count, and share of all flipped records)
   and the AUC. Acceptance (pre-registered): on the mean over the evidence seeds, per data set and model,
   the default ranking finds at least as many flipped records in the top 10% as the best of loss, plain
   self-influence and leverage-corrected self-influence; also how many single seeds satisfy it and the
   paired difference default − rival with a 95% t-interval over seeds (reported, not deciding).
2. **Canaries** (privacy audit). Heart disease, 10 canaries planted exactly as
   ``tests/audits/test_privacy_plugin.py::splits_with_canaries`` does (copied below; canary seeds 0 and 1).
   Logistic regression (l2 = 0.01) and MLP hidden 32 (l2 = 1e-3), each audited by
   ``run_plugin("privacy")`` without and with a training function (``warm_start_trainer``, 8 reference
   models). Per canary: rank (0 = riskiest) under the default risk, leverage-corrected and plain
   self-influence, loss (highest first) and the reference z; flagged or not; the actual leave-one-out
   change of its own loss (warm-start retraining). The risk is recomputed exactly as the plugin does (the
   training function is memoised, so the recomputation reuses the plugin's very reference models) and
   checked against the plugin's threshold and flags. Acceptance: every canary flagged and in the top 5% of
   the default risk, for the logistic regression from the engine alone and for the MLP with a training
   function.
3. **Membership inference, over-fit vs regularised.** Heart disease (split of part 1, clean labels): MLP
   hidden 64 at l2 = 1e-5 against logistic regression at l2 = 0.1; the plugin's attack metrics (LOSS,
   self-influence, reference) with a training function. Acceptance: LOSS-attack AUC higher for the MLP.
4. **Flag calibration.** Heart disease split 460 train / 100 test / 360 holdout (seed 0); the holdout cut
   into two random halves of 180 (several halvings, both directions): the plugin calibrates on one half;
   the realised false-positive rate of its threshold is measured on the other half, with the risk of those
   records recomputed on the same scale. Budgets 0.01, 0.05, 0.10; expected rate
   ``(⌊budget·m⌋ + 1)/(m + 1)``; Clopper–Pearson 95% intervals.

How to run
----------
::

    .venv/bin/python benchmarks/privacy_detection.py            # full run, about fifteen minutes on 2 cores
    .venv/bin/python benchmarks/privacy_detection.py --quick    # 1 seed, fewer configurations
    .venv/bin/python benchmarks/privacy_detection.py --out DIR  # write results elsewhere
    # only the mislabel part (evidence seeds 5-14 and development seeds 0-4); canaries, membership and
    # calibration carried over, labelled as such, from the results JSON already in --out (or --carry-from)
    .venv/bin/python benchmarks/privacy_detection.py --parts mislabels --carry-note "why not rerun"
    .venv/bin/python benchmarks/privacy_detection.py --parts mislabels --seeds 5,6 --dev-seeds none --out /tmp/x

It writes ``privacy_detection.json`` (every number, the settings, seeds, versions and timings) and
``privacy_detection.md`` (tables, the PASS/FAIL lines and interpretation) to ``--out`` (default
``benchmarks/results``). A benchmark, not a test: not timed, not part of the test run.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch.func import functional_call, grad

torch.set_num_threads(1)      # tiny models: one thread is 10-100x faster than oversubscribed cores

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import auditkit as ak  # noqa: E402
from auditkit.audits.base import AuditContext, warm_start_trainer  # noqa: E402
from auditkit.audits.privacy.attacks import flag_false_alarm_rate, flag_threshold  # noqa: E402
from auditkit.audits.privacy.plugin import tail_scale  # noqa: E402
from auditkit.audits.privacy.reference import reference_attack  # noqa: E402
from auditkit.audits.quality import EVEN_ODDS, default_order, misfit_first_order, out_of_fold_losses, suspicion_order  # noqa: E402
from auditkit.audits.registry import run_plugin  # noqa: E402
from auditkit.data import DataSpec, age_bands, load_table, prepare_splits  # noqa: E402
from auditkit.errors import AuditkitWarning, SingularHessianError  # noqa: E402
from examples.datasets import GERMAN_CATEGORICAL, GERMAN_NUMERIC, load_german_credit  # noqa: E402

LOSS = "cross_entropy"
SPLIT_SEED = 0
FLIP_SEEDS = list(range(20, 30))    # evidence: fresh seeds, run only after the pre-registration was committed
DEV_FLIP_SEEDS = [15, 16, 17, 18, 19]  # seen while studying the rule: reported, never evidence
#: Seeds of the earlier round (the engine-only rule): 5-14 evidence, 0-4 development; spent, never reused.
ROUND1_FLIP_SEEDS, ROUND1_DEV_FLIP_SEEDS = list(range(5, 15)), [0, 1, 2, 3, 4]
PARTS = ("mislabels", "canaries", "membership", "calibration")
FLIP_FRACTION = 0.10
CANARY_SEEDS = [0, 1]
N_CANARIES = 10
REFERENCE_MODELS = 8
BUDGET = 0.01
TOP_SHARE_CANARY = 0.05
CALIBRATION_BUDGETS = [0.01, 0.05, 0.10]
CALIBRATION_HALVINGS = 5            # random halvings of the holdout, each used in both directions
#: (hidden units, l2); hidden 0 = logistic regression
OOF_FOLDS = 5                       # the data-quality plugin's defaults (folds, seed)
OOF_SEED = 0
MISLABEL_MODELS = {"logreg l2=0.01": (0, 0.01), "mlp32 l2=0.01": (32, 0.01), "mlp32 l2=0.001": (32, 1e-3)}
CANARY_MODELS = {"logreg l2=0.01": (0, 0.01), "mlp32 l2=0.001": (32, 1e-3)}
MIA_MODELS = {"mlp64 l2=1e-5 (over-fit)": (64, 1e-5), "logreg l2=0.1 (regularised)": (0, 0.1)}
CALIBRATION_MODELS = {"logreg l2=0.01, engine only": (0, 0.01, False),
                      "logreg l2=0.01, with training function": (0, 0.01, True),
                      "mlp32 l2=0.001, with training function": (32, 1e-3, True)}
#: Round 1 (the engine-only rule), written and committed before flip seeds 5-14 were first run; its outcome
#: (3 of 6 configurations pass) is kept in the results file. Not to be edited.
PREREGISTRATION_ROUND1 = {
    "registered": "2026-11-29, before the first run of flip seeds 5-14",
    "rule": "Default data-quality ranking, unchanged: auditkit.audits.quality.suspicion_order(ℓ, s̃): the "
            "records the model misfits (ℓ > log 2) first, by training loss ℓ, highest first; then the others by "
            "the estimated held-out loss ℓ + s̃ (s̃ the leverage-corrected self-influence), highest first.",
    "why": "Study of the seen seeds 0-4 (reported below as development seeds, not evidence): (1) the failing "
           "configuration (german_credit / mlp32 l2=0.01) is not explained by the non-converged fit: at seed 0 "
           "the model misfits 59 records, so the default equals the loss ranking in 59 of the 60 places of the top "
           "10%, and without seed 0 the default still trails the loss (19.0 vs 19.75); restarting L-BFGS five more "
           "times does not converge it either (‖∇R‖∞ stays near 2.4e-8, smallest Hessian eigenvalue -4.5e-6 of "
           "8.66: a flat, slightly non-convex valley). (2) The default differs from the loss ranking only in the "
           "places of the top 10% left after the misfit records (1-25 per seed there); among the records the model "
           "fits, loss and ℓ + s̃ separate the flips about equally (AUC over those records 0.670-0.745 vs "
           "0.673-0.751) and pick up 16 vs 12 flipped records in those 79 places over five seeds; the per-seed "
           "differences default - loss (-1, -1, -1, -3, +2) put a 95% interval of about -3.0 to +1.4 around "
           "the mean -0.8. (3) None of the principled alternatives tried on seeds 0-4 did better across the "
           "configurations: the approximate leave-one-out loss in the label's log-odds (softplus(s̃/(1-p) - m), "
           "Rad & Maleki 2020), ℓ + s̃ everywhere, the misfit block followed by that estimate, rank averages of "
           "ℓ and ℓ + s̃ or s̃, max(ℓ, s̃), ℓ + s. Changing the rule on that evidence would be fitting noise in "
           "five seeds, so the rule is kept and put to the test on fresh seeds.",
    "evidence": "Flip seeds 5-14 (ten, never run before this registration), the six configurations heart_disease "
                "and german_credit × logreg l2=0.01, mlp32 l2=0.01, mlp32 l2=0.001; splits, flips, models, "
                "training (auditkit.fit_model) and engine (exact) exactly as for seeds 0-4.",
    "criterion": "Per configuration: the mean over the ten seeds of flipped records found in the top 10% by the "
                 "default ranking ≥ the largest of the same means for the training loss, plain self-influence and "
                 "leverage-corrected self-influence (the strictest reading of “the better of loss and "
                 "self-influence”); ties pass. PASS or FAIL per configuration; the issue's point is met only if all "
                 "six pass.",
    "handling": "Every seed counts. A fit that stops short of ‖∇R‖∞ ≤ 1e-9 is kept as it is and reported; when "
                "the exact engine finds the Hessian not positive definite, the engine is refitted once with the "
                "damping its error message suggests (as for seeds 0-4), and that is reported too.",
    "reported_not_deciding": "Top 20%, AUC, per-seed hits, and the paired difference default - rival (mean and a "
                             "95% t-interval over the ten seeds) for each rival.",
    "after": "The rule and the criterion are not changed after the run; the outcome is reported as it is.",
}
#: Round 2: written and committed before any of FLIP_SEEDS (20-29) was run (see the git history of this file
#: and of benchmarks/results/privacy_detection.md); the markdown prints it verbatim. Not to be edited after the run.
PREREGISTRATION = {
    "registered": "2026-11-29, before the first run of flip seeds 20-29",
    "rule": "Default data-quality ranking when the configuration names a training function (here the "
            "built-in warm start, warm_start_trainer: fit_model from the trained weights): "
            "auditkit.audits.quality.out_of_fold_order(ℓ, o) with o the out-of-fold loss of 5-fold label-stratified "
            "cross-fitting (plugin defaults folds=5, seed=0): the records the model misfits (ℓ > log 2) first, by "
            "training loss ℓ, highest first; then the others by the sum of their ranks among all training records "
            "by ℓ and by o (smallest first; ties by the ℓ rank). Without a training function the default stays the "
            "engine-only rule of round 1 (not tested again here).",
    "why": "Development seeds 15-19 (reported below, not evidence), mean flipped records in the top 10% over the "
           "six configurations (heart LR, heart MLP l2=0.01, heart MLP l2=0.001, German LR, German MLP l2=0.01, "
           "German MLP l2=0.001): this rule 32.8, 28.4, 24.6, 28.0, 24.8, 21.8 against the best of loss, s, s̃ "
           "32.8, 28.4, 21.6, 28.0, 25.0, 20.2 (5 of 6 pass; German MLP l2=0.01 short by 0.2: per seed this rule "
           "minus the loss +1, +1, -2, +1, -2). Candidates tried on the same seeds, same order of configurations: "
           "out-of-fold loss alone 32.2, 27.6, 22.6, 26.2, 22.4, 20.6; misfit by ℓ then o 32.8, 28.4, 22.6, 28.0, "
           "24.2, 20.6; misfit by ℓ then ℓ + o 32.8, 28.4, 22.8, 28.0, 24.6, 20.6; misfit by ℓ then o + ℓ + s̃ "
           "32.8, 28.4, 22.6, 28.0, 24.4, 20.6; rank mean of ℓ and o everywhere 32.2, 29.0, 24.6, 27.6, 24.6, 21.8; "
           "ℓ + o everywhere 32.0, 28.8, 22.8, 27.4, 23.8, 20.6; the engine-only rule of round 1 32.8, 28.4, 20.8, "
           "28.0, 24.0, 20.0. Among the records the model fits (ℓ ≤ log 2), in the 15 runs (three "
           "configurations × five seeds) where such records enter the top 10%, the rank mean separates the flips "
           "best on average (AUC within that block: ℓ 0.763, o 0.767, rank mean 0.781, s̃ 0.771, ℓ + s̃ 0.769; best "
           "of the five in 7 of 15 runs): the in-sample loss is precise "
           "but lowered by memorisation, the out-of-fold loss sees memorised labels but is noisy (one fold model "
           "per record, 80% of the data, warm start), and equal-weight ranks combine them without a fitted weight. "
           "The misfit block by ℓ keeps the rule equal to the loss where the model misfits more records than the "
           "top 10% holds (the logistic regressions, heart MLP l2=0.01). Cost: 5 extra trainings (MLPs: 6.6-26.1 s "
           "against 2.8-12.0 s for the original fit and engine; logistic regressions 0.3 s; one thread).",
    "evidence": "Flip seeds 20-29 (ten, never run before this registration), the six configurations heart_disease "
                "and german_credit × logreg l2=0.01, mlp32 l2=0.01, mlp32 l2=0.001; splits, flips, models, training "
                "(auditkit.fit_model from torch.manual_seed(seed)) and engine (exact) exactly as in round 1; the "
                "plugin runs with a training function (warm_start_trainer(l2), memoised so that the benchmark's "
                "recomputation reuses the plugin's fold models) and its defaults folds=5, seed=0.",
    "criterion": "Per configuration: the mean over the ten seeds of flipped records found in the top 10% by the "
                 "default ranking ≥ the largest of the same means for the training loss, plain self-influence and "
                 "leverage-corrected self-influence; ties pass. PASS or FAIL per configuration; the issue's point is "
                 "met only if all six pass. (Same criterion as round 1.)",
    "handling": "Every seed counts. A fit that stops short of ‖∇R‖∞ ≤ 1e-9 is kept as it is and reported; when "
                "the exact engine finds the Hessian not positive definite, the engine is refitted once with the "
                "damping its error message suggests, and that is reported too. Fold models are used as the "
                "training function returns them.",
    "reported_not_deciding": "Top 20%, AUC, per-seed hits, the paired difference default - rival (mean and a 95% "
                             "t-interval over the ten seeds), the other candidates above, the cost of the folds.",
    "after": "The rule and the criterion are not changed after the run; the outcome is reported as it is. Seeds "
             "0-29 are then spent.",
}
ANCHORS = {"dattri_logreg_mnist_auc": 0.98, "dattri_mlp_mnist_auc": [0.84, 0.87],
           "kronfluence_cifar10_top10": 0.80, "kronfluence_cifar10_top20": 0.97}


# ----------------------------------------------------------------------------------------- data
def heart_frame():
    """UCI heart disease as the tests load it: disease = num > 0; ids; age band <55 / 55+."""
    frame = load_table(ROOT / "examples/heart_disease/data/heart_disease_uci.csv")
    frame["disease"] = np.where(frame.pop("num") > 0, "yes", "no")
    frame["id"] = [f"patient-{i:05d}" for i in frame["id"]]
    frame["age_band"] = age_bands(frame["age"], edges=(55,))
    return frame


HEART_SPEC_KW = {"target": "disease", "sensitive": ("sex", "age_band"), "id_column": "id", "favourable": "yes"}


def heart_spec(frame):
    return DataSpec(**HEART_SPEC_KW,
                    features=tuple(c for c in frame.columns if c not in ("disease", "id", "age_band")))


def heart_splits(sizes=(560, 180), seed: int = SPLIT_SEED, holdout_halves=None):
    """train / test / holdout by a seeded permutation; ``holdout_halves``: (rng seed, swap) to cut the
    holdout into two halves, "holdout" (calibration) and "holdout_b" (the other half)."""
    frame = heart_frame()
    order = np.random.default_rng(seed).permutation(len(frame))
    n_tr, n_te = sizes
    parts = {"train": frame.iloc[order[:n_tr]], "test": frame.iloc[order[n_tr:n_tr + n_te]]}
    rest = order[n_tr + n_te:]
    if holdout_halves is None:
        parts["holdout"] = frame.iloc[rest]
    else:
        h_seed, swap = holdout_halves
        cut = np.random.default_rng([seed, h_seed]).permutation(rest)
        a, b = cut[: len(cut) // 2], cut[len(cut) // 2:]
        if swap:
            a, b = b, a
        parts["holdout"], parts["holdout_b"] = frame.iloc[a], frame.iloc[b]
    return prepare_splits(parts, heart_spec(frame))


def german_splits(seed: int = SPLIT_SEED):
    frame = load_german_credit()
    order = np.random.default_rng(seed).permutation(len(frame))
    parts = {"train": frame.iloc[order[:600]], "test": frame.iloc[order[600:800]],
             "holdout": frame.iloc[order[800:]]}
    spec = DataSpec(target="target", sensitive=("sex",), id_column="id", favourable=1,
                    features=tuple(GERMAN_NUMERIC + GERMAN_CATEGORICAL))
    return prepare_splits(parts, spec)


DATASETS = {"heart_disease": heart_splits, "german_credit": german_splits}
DATASET_NOTES = {
    "heart_disease": "examples/heart_disease/data/heart_disease_uci.csv via auditkit.data.load_table (as in the "
                     "tests: disease = num > 0, no other cleaning); 560 train / 180 test / 180 holdout, "
                     "default_rng(0).permutation; features: all columns but disease, id, age_band; sensitive: "
                     "sex, age_band (<55 / 55+)",
    "german_credit": "examples.datasets.load_german_credit(); 600 train / 200 test / 200 holdout, "
                     "default_rng(0).permutation; features: GERMAN_NUMERIC + GERMAN_CATEGORICAL; sensitive: sex",
}


def with_train_labels(splits: dict, y: np.ndarray, X: np.ndarray | None = None) -> dict:
    """A copy of ``splits`` whose train split has labels ``y`` (and features ``X``); other splits shared."""
    out = dict(splits)
    train = splits["train"]
    out["train"] = dataclasses.replace(train, y=np.asarray(y).copy(),
                                       X=train.X.copy() if X is None else np.asarray(X).copy())
    return out


def splits_with_canaries(seed: int = 0):
    """Copy of ``tests/audits/test_privacy_plugin.py::splits_with_canaries`` (same design, same seeds):
    heart disease split 560 / 180 / 180, with 10 training records turned into canaries: each has three of
    the features a clean model weighs most (never shared with another canary) pushed at least 10 units
    towards one class, and the other class as its label (the clean model gives it < 1%)."""
    frame = heart_frame()
    order = np.random.default_rng(seed).permutation(len(frame))
    parts = {"train": frame.iloc[order[:560]], "test": frame.iloc[order[560:740]],
             "holdout": frame.iloc[order[740:]]}
    splits = prepare_splits(parts, heart_spec(frame))
    train = splits["train"]
    clean = torch.nn.Linear(train.X.shape[1], 2).double()
    ak.fit_model(clean, torch.tensor(train.X), torch.tensor(train.y), l2=0.01)
    weight = (clean.weight[1] - clean.weight[0]).detach().numpy()
    rng = np.random.default_rng(seed + 1)
    canaries = rng.choice(train.n, N_CANARIES, replace=False)
    X, y = train.X.copy(), train.y.copy()
    strongest = np.argsort(-np.abs(weight))[: 3 * N_CANARIES]
    clean_p = []
    for j, columns in zip(canaries, rng.permutation(strongest).reshape(N_CANARIES, 3), strict=True):
        pushed = rng.integers(2)
        size = max(10.0, 12.0 / np.abs(weight[columns]).sum())
        X[j, columns] += size * np.sign(weight[columns]) * (1 if pushed else -1)
        y[j] = 1 - pushed
        with torch.no_grad():
            p = float(torch.softmax(clean(torch.tensor(X[j:j + 1])), dim=1)[0, y[j]])
        assert p < 0.01, p
        clean_p.append(p)
    train.X, train.y = X, y
    return splits, canaries, clean_p


# ----------------------------------------------------------------------------------------- models
def build(d: int, hidden: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if hidden == 0:
        return torch.nn.Linear(d, 2).double()
    return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 2)).double()


def engine_for(model, X, y, l2: float) -> tuple[ak.InfluenceEngine, dict]:
    """Exact engine; on SingularHessianError retry once with the damping the message suggests."""
    record = {"damping": 0.0, "singular_message": None}
    try:
        return ak.InfluenceEngine(model, LOSS, l2=l2).fit(X, y), record
    except SingularHessianError as exc:
        found = re.search(r"pass damping=([0-9.eE+-]+)", str(exc))
        if not found:
            raise
        damping = float(found.group(1))
        record.update(damping=damping, singular_message=str(exc))
        return ak.InfluenceEngine(model, LOSS, l2=l2, damping=damping).fit(X, y), record


def trained(splits: dict, hidden: int, l2: float, seed: int) -> tuple[torch.nn.Module, ak.InfluenceEngine, dict]:
    train = splits["train"]
    X, y = torch.tensor(train.X), torch.tensor(train.y)
    model = build(X.shape[1], hidden, seed)
    t0 = time.perf_counter()
    info = ak.fit_model(model, X, y, loss=LOSS, l2=l2)
    t1 = time.perf_counter()
    engine, eng = engine_for(model, X, y, l2)
    t2 = time.perf_counter()
    fit = {"converged": bool(info["converged"]), "grad_norm": float(info["grad_norm"]),
           "iterations": int(info["iterations"]), "objective": float(info["objective"]),
           "n_params": int(sum(p.numel() for p in model.parameters())), **eng,
           "fit_seconds": t1 - t0, "engine_seconds": t2 - t1}
    return model, engine, fit


def accuracy(ctx: AuditContext, split: str) -> float:
    return float((ctx.proba(split).argmax(1) == ctx.splits[split].y).mean())


def grad_norm(model, X, y, l2: float) -> float:
    """‖∇R(θ)‖∞ of mean loss + (l2/2)‖θ‖² on (X, y): did a retraining converge."""
    theta = {n: p.detach() for n, p in model.named_parameters()}

    def objective(params):
        value = F.cross_entropy(functional_call(model, params, (X,)), y)
        return value + 0.5 * l2 * sum((t * t).sum() for t in params.values())

    return float(max(v.abs().max() for v in grad(objective)(theta).values()))


def memoised_trainer(l2: float):
    """``warm_start_trainer(l2=l2)`` remembering each result by the records it was given: every caller
    starts from the same audited model (a deep copy), so a repeated call returns the very same model the
    first one trained. Lets the benchmark recompute the plugin's reference scores without retraining."""
    inner = warm_start_trainer(loss=LOSS, l2=l2)
    cache: dict[str, dict] = {}
    stats = {"trainings": 0, "hits": 0, "seconds": 0.0}

    def train(model, X, y):
        key = hashlib.sha1(np.ascontiguousarray(X).tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()
        if key in cache:
            stats["hits"] += 1
            model.load_state_dict(cache[key])
            return model
        t0 = time.perf_counter()
        model = inner(model, X, y)
        stats["seconds"] += time.perf_counter() - t0
        stats["trainings"] += 1
        cache[key] = copy.deepcopy(model.state_dict())
        return model

    train.stats = stats
    return train


# ----------------------------------------------------------------------------------------- ranking helpers
def rank_of(score: np.ndarray) -> np.ndarray:
    """Position of every record when sorted by ``score``, highest first (0 = top; stable)."""
    order = np.argsort(-score, kind="stable")
    rank = np.empty(len(score), dtype=int)
    rank[order] = np.arange(len(score))
    return rank


def detection(order: np.ndarray, is_flipped: np.ndarray) -> dict:
    """Flipped records found in the top 10% / 20% of ``order`` (positions, most suspicious first) and AUC."""
    n, k = len(order), int(is_flipped.sum())
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n)
    out = {}
    for share in (0.1, 0.2):
        top = int(round(share * n))
        hits = int(is_flipped[order[:top]].sum())
        out[f"top{int(share * 100)}"] = {"n_top": top, "hits": hits, "recall": hits / k, "precision": hits / top}
    out["auc"] = float(roc_auc_score(is_flipped, -rank))
    return out


def order_by(score: np.ndarray) -> np.ndarray:
    return np.argsort(-score, kind="stable")


# ----------------------------------------------------------------------------------------- 1. mislabels
def mislabel_run(dataset: str, base: dict, model_name: str, seed: int) -> dict:
    hidden, l2 = MISLABEL_MODELS[model_name]
    t0 = time.perf_counter()
    train = base["train"]
    rng = np.random.default_rng(seed)
    flip = np.sort(rng.choice(train.n, int(round(FLIP_FRACTION * train.n)), replace=False))
    y = train.y.copy()
    y[flip] = 1 - y[flip]
    splits = with_train_labels(base, y)
    is_flipped = np.zeros(train.n, dtype=bool)
    is_flipped[flip] = True
    model, engine, fit = trained(splits, hidden, l2, seed)
    train_fn = memoised_trainer(l2)
    ctx = AuditContext(model, engine, splits, loss=LOSS, l2=l2, seed=seed, train_fn=train_fn)
    loss = ctx.losses("train")
    t1 = time.perf_counter()
    s_plain = ctx.self_influence()
    s_lev = ctx.self_influence(leverage=True)
    t2 = time.perf_counter()
    oof, _ = out_of_fold_losses(ctx, folds=OOF_FOLDS, seed=OOF_SEED)     # the plugin's own fold models
    t_oof = time.perf_counter()
    fold_fits = train_fn.stats["trainings"]
    n20 = int(round(0.2 * train.n))
    found = run_plugin("data_quality", ctx, {"top": n20, "folds": OOF_FOLDS, "seed": OOF_SEED})
    t3 = time.perf_counter()
    order = default_order(loss, s_lev, oof if found.out_of_fold else None)
    plugin_tokens = [s["token"] for s in found.suspects]
    rebuilt_tokens = [ctx.token("train", int(j)) for j in order[:n20]]
    agree = int(sum(a == b for a, b in zip(plugin_tokens, rebuilt_tokens, strict=True)))
    rankings = {"default": order, "loss": order_by(loss), "self_influence": order_by(s_plain),
                "self_influence_leverage": order_by(s_lev), "estimated_held_out_loss": order_by(loss + s_lev),
                "engine_default": suspicion_order(loss, s_lev), "out_of_fold_loss": order_by(oof),
                "misfit_then_out_of_fold": misfit_first_order(loss, oof),
                "rank_mean_loss_out_of_fold": order_by(-(rank_of(loss) + rank_of(oof)) - 1e-9 * rank_of(loss))}
    if hidden == 0:      # oracle reference: the noisy label's loss under a model trained on the clean labels
        clean = build(train.X.shape[1], 0, seed)
        ak.fit_model(clean, torch.tensor(train.X), torch.tensor(train.y), l2=l2)
        with torch.no_grad():
            clean_loss = F.cross_entropy(clean(torch.tensor(train.X)), torch.tensor(y), reduction="none").numpy()
        rankings["oracle_clean_model_loss"] = order_by(clean_loss)
    misfit = loss > EVEN_ODDS
    return {
        "dataset": dataset, "model": model_name, "hidden": hidden, "l2": l2, "seed": seed,
        "n_train": train.n, "n_flipped": int(is_flipped.sum()), "fit": fit,
        "train_accuracy_noisy_labels": accuracy(ctx, "train"), "test_accuracy": accuracy(ctx, "test"),
        "n_misfit": int(misfit.sum()), "flipped_among_misfit": int((misfit & is_flipped).sum()),
        "worth_inspecting": found.worth_inspecting,
        "plugin_agreement": {"compared": n20, "same_position": agree, "identical": agree == n20},
        "detection": {k: detection(v, is_flipped) for k, v in rankings.items()},
        "out_of_fold": {"folds": OOF_FOLDS, "seed": OOF_SEED, "trainings": fold_fits,
                        "plugin_used_it": bool(found.out_of_fold), "plugin_score": found.score,
                        "plugin_retrained": train_fn.stats["trainings"] - fold_fits,
                        "loss_rise_mean": float(np.mean(oof - loss)),
                        "misfit_out_of_fold": int((oof > EVEN_ODDS).sum())},
        "seconds": {"fit_and_engine": t1 - t0, "self_influence": t2 - t1, "out_of_fold": t_oof - t2,
                    "plugin": t3 - t_oof,
                    "total": time.perf_counter() - t0},
    }


def summarise_mislabels(runs: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["dataset"], r["model"]) for r in runs}, key=lambda k: (list(DATASETS).index(k[0]),
                                                                            list(MISLABEL_MODELS).index(k[1])))
    for dataset, model in keys:
        rs = [r for r in runs if r["dataset"] == dataset and r["model"] == model]
        scores = list(rs[0]["detection"])
        mean = {s: {"top10_hits": float(np.mean([r["detection"][s]["top10"]["hits"] for r in rs])),
                    "top10_recall": float(np.mean([r["detection"][s]["top10"]["recall"] for r in rs])),
                    "top20_hits": float(np.mean([r["detection"][s]["top20"]["hits"] for r in rs])),
                    "top20_recall": float(np.mean([r["detection"][s]["top20"]["recall"] for r in rs])),
                    "auc": float(np.mean([r["detection"][s]["auc"] for r in rs])),
                    "auc_sd": float(np.std([r["detection"][s]["auc"] for r in rs], ddof=1)) if len(rs) > 1 else None}
                for s in scores}
        rivals = ("loss", "self_influence", "self_influence_leverage")
        best_rival = max(rivals, key=lambda s: mean[s]["top10_hits"])
        passed = mean["default"]["top10_hits"] >= mean[best_rival]["top10_hits"]
        seeds_ok = sum(r["detection"]["default"]["top10"]["hits"]
                       >= max(r["detection"][s]["top10"]["hits"] for s in rivals) for r in rs)
        paired = {s: paired_difference([r["detection"]["default"]["top10"]["hits"] - r["detection"][s]["top10"]["hits"]
                                        for r in rs]) for s in rivals}
        converged = [r for r in rs if r["fit"]["converged"]]
        converged_only = {s: float(np.mean([r["detection"][s]["top10"]["hits"] for r in converged])) if converged
                          else None for s in ("default",) + rivals}
        out.append({"dataset": dataset, "model": model, "seeds": [r["seed"] for r in rs], "mean": mean,
                    "n_flipped": rs[0]["n_flipped"], "n_train": rs[0]["n_train"],
                    "test_accuracy_mean": float(np.mean([r["test_accuracy"] for r in rs])),
                    "train_accuracy_mean": float(np.mean([r["train_accuracy_noisy_labels"] for r in rs])),
                    "misfit_mean": float(np.mean([r["n_misfit"] for r in rs])),
                    "plugin_agreement_all": all(r["plugin_agreement"]["identical"] for r in rs),
                    "all_converged": all(r["fit"]["converged"] for r in rs),
                    "not_converged_seeds": [r["seed"] for r in rs if not r["fit"]["converged"]],
                    "misfit_per_seed": [r["n_misfit"] for r in rs],
                    "n_top10": rs[0]["detection"]["default"]["top10"]["n_top"],
                    "paired_top10_default_minus": paired,
                    "top10_hits_converged_fits_only": converged_only,
                    "damped_seeds": [r["seed"] for r in rs if r["fit"]["damping"] > 0],
                    "check": {"name": f"{dataset} / {model}: default finds ≥ flipped records in the top 10% than "
                                      "the best of loss, self-influence, leverage-corrected self-influence "
                                      "(mean over seeds)",
                              "default_top10_hits": mean["default"]["top10_hits"], "best_rival": best_rival,
                              "best_rival_top10_hits": mean[best_rival]["top10_hits"], "passed": bool(passed),
                              "seeds_satisfying": int(seeds_ok), "n_seeds": len(rs)}})
    return out


def paired_difference(diffs: list[int]) -> dict:
    """Mean of per-seed differences and a 95% Student-t interval over seeds (None with one seed)."""
    from scipy.stats import t as student_t
    d = np.asarray(diffs, dtype=float)
    out = {"per_seed": [int(x) for x in d], "mean": float(d.mean()), "ci95": None,
           "wins": int((d > 0).sum()), "ties": int((d == 0).sum()), "losses": int((d < 0).sum())}
    if len(d) > 1:
        half = float(student_t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
        out["ci95"] = [float(d.mean() - half), float(d.mean() + half)]
    return out


# ----------------------------------------------------------------------------------------- privacy helpers
def recompute_risk(ctx: AuditContext, budget: float, extra: str | None = None) -> dict:
    """The plugin's risk recomputed (same signals, same scaling): members, calibration non-members and,
    with ``extra``, another split of non-members put on the calibration scale."""
    X_h, y_h = ctx.tensor("holdout")
    signals = {"self_influence": (ctx.self_influence(leverage=True),
                                  ctx.engine.self_influence_of(X_h, y_h, leverage=True))}
    extra_sig = {}
    if extra is not None:
        extra_sig["self_influence"] = ctx.engine.self_influence_of(*ctx.tensor(extra), leverage=True)
    ref = None
    if ctx.train_fn is not None:
        ref = reference_attack(ctx, n_models=REFERENCE_MODELS, seed=0,
                               splits=("train", "holdout") + ((extra,) if extra else ()))
        signals["reference"] = (ref.scores["train"], ref.scores["holdout"])
        if extra is not None:
            extra_sig["reference"] = ref.scores[extra]
    scaled_m = {k: tail_scale(m, h, budget) for k, (m, h) in signals.items()}
    scaled_h = {k: tail_scale(h, h, budget) for k, (_, h) in signals.items()}
    risk_m = np.max(list(scaled_m.values()), axis=0)
    risk_h = np.max(list(scaled_h.values()), axis=0)
    out = {"signals": signals, "risk_m": risk_m, "risk_h": risk_h, "threshold": flag_threshold(risk_h, budget),
           "reference": ref}
    if extra is not None:
        out["risk_x"] = np.max([tail_scale(extra_sig[k], signals[k][1], budget) for k in signals], axis=0)
    return out


def attack_summary(attacks: dict) -> dict:
    return {k: {"auc": a["auc"], "tpr_at_1%": a["tpr_at_fpr"].get("0.01"), "tpr_at_0.1%": a["tpr_at_fpr"].get("0.001"),
                "advantage": a["advantage"], "unresolved_fprs": a["unresolved_fprs"]} for k, a in attacks.items()}


# ----------------------------------------------------------------------------------------- 2. canaries
def canary_run(canary_seed: int, model_name: str) -> dict:
    hidden, l2 = CANARY_MODELS[model_name]
    t0 = time.perf_counter()
    splits, canaries, clean_p = splits_with_canaries(canary_seed)
    model, engine, fit = trained(splits, hidden, l2, 0)
    train = splits["train"]
    X, y = torch.tensor(train.X), torch.tensor(train.y)
    n = train.n
    top_limit = TOP_SHARE_CANARY * n
    result = {"canary_seed": canary_seed, "model": model_name, "hidden": hidden, "l2": l2, "fit": fit,
              "n_train": n, "n_holdout": splits["holdout"].n, "canary_positions": [int(j) for j in canaries],
              "clean_model_probability_of_label": clean_p, "audits": {}}
    trainer = memoised_trainer(l2)
    for mode in ("engine only", "with training function"):
        t1 = time.perf_counter()
        ctx = AuditContext(model, engine, splits, loss=LOSS, l2=l2,
                           train_fn=trainer if mode != "engine only" else None, seed=0)
        found = run_plugin("privacy", ctx, {"budget": BUDGET, "reference_models": REFERENCE_MODELS, "trust_top": 10,
                                            "seed": 0})     # the seed of the committed results (not derived)
        t2 = time.perf_counter()
        rec = recompute_risk(ctx, BUDGET)
        flagged_tokens = [f["token"] for f in found.flags]
        rebuilt = [ctx.token("train", int(j)) for j in np.argsort(-rec["risk_m"], kind="stable")
                   if rec["risk_m"][j] > rec["threshold"]]
        loss = ctx.losses("train")
        ranks = {"default_risk": rank_of(rec["risk_m"]),
                 "self_influence_leverage": rank_of(ctx.self_influence(leverage=True)),
                 "self_influence": rank_of(ctx.self_influence()), "loss_highest_first": rank_of(loss),
                 "loss_lowest_first": rank_of(-loss)}
        if rec["reference"] is not None:
            ranks["reference_z"] = rank_of(rec["reference"].scores["train"])
        flag_pos = {t: k for k, t in enumerate(flagged_tokens)}
        per = []
        for j in canaries:
            tok = ctx.token("train", int(j))
            row = {"position": int(j), "flagged": tok in flag_pos, "flag_position": flag_pos.get(tok),
                   "risk": float(rec["risk_m"][j]), "loss": float(loss[j]),
                   "p_label": float(ctx.proba("train")[j, train.y[j]]),
                   "self_influence": float(ctx.self_influence()[j]),
                   "self_influence_leverage": float(ctx.self_influence(leverage=True)[j]),
                   "ranks": {k: int(v[j]) for k, v in ranks.items()}}
            if rec["reference"] is not None:
                row["reference_z"] = float(rec["reference"].scores["train"][j])
            per.append(row)
        default_ranks = [r["ranks"]["default_risk"] for r in per]
        audit = {"signals": found.signals, "threshold": found.threshold,
                 "threshold_recomputed": float(rec["threshold"]),
                 "recomputation_matches_plugin": bool(math.isclose(found.threshold, rec["threshold"], rel_tol=1e-9,
                                                                   abs_tol=1e-12) and rebuilt == flagged_tokens),
                 "n_flagged": found.n_flagged, "n_canaries_flagged": sum(r["flagged"] for r in per),
                 "realised_fpr_on_calibration": found.realised_fpr_on_calibration,
                 "expected_false_alarm_rate": flag_false_alarm_rate(splits["holdout"].n, BUDGET),
                 "max_canary_rank_default": int(max(default_ranks)),
                 "canaries_in_top5pct": int(sum(r < top_limit for r in default_ranks)),
                 "flagged_non_canaries": int(found.n_flagged - sum(r["flagged"] for r in per)),
                 "attacks": attack_summary(found.to_dict()["attacks"]),
                 "trust": {k: v for k, v in found.trust.items() if k != "records"},
                 "trust_records": found.trust.get("records", []), "notes": found.notes, "canaries": per,
                 "seconds": {"plugin": t2 - t1, "recompute": time.perf_counter() - t2}}
        if rec["reference"] is not None:
            audit["reference_sigma"] = rec["reference"].sigma
        audit["passed_all_flagged_top5"] = bool(audit["n_canaries_flagged"] == N_CANARIES
                                                and audit["canaries_in_top5pct"] == N_CANARIES)
        result["audits"][mode] = audit
    # actual leave-one-out retraining of each canary (warm start, same objective), via the memoised trainer
    t3 = time.perf_counter()
    ctx = AuditContext(model, engine, splits, loss=LOSS, l2=l2, train_fn=trainer, seed=0)
    before = ctx.losses("train")
    loo = []
    for j in canaries:
        retrained = ctx.retrain_without([int(j)])
        keep = np.ones(n, dtype=bool)
        keep[j] = False
        after = ctx.losses("train", retrained)[j]
        loo.append({"position": int(j), "loss_before": float(before[j]), "loss_after": float(after),
                    "actual_change": float(after - before[j]),
                    "p_label_before": float(np.exp(-before[j])), "p_label_after": float(np.exp(-after)),
                    "predicted_leverage": float(ctx.self_influence(leverage=True)[j]),
                    "predicted_plain": float(ctx.self_influence()[j]),
                    "retrain_grad_norm": grad_norm(retrained, X[keep], y[keep], l2)})
    changes = np.array([r["actual_change"] for r in loo])
    non = np.setdiff1d(np.arange(n), canaries)
    result["leave_one_out"] = {"canaries": loo, "median_actual_change": float(np.median(changes)),
                               "min_actual_change": float(changes.min()),
                               "median_self_influence_leverage_non_canaries":
                                   float(np.median(ctx.self_influence(leverage=True)[non])),
                               "p99_self_influence_leverage_non_canaries":
                                   float(np.quantile(ctx.self_influence(leverage=True)[non], 0.99)),
                               "seconds": time.perf_counter() - t3}
    result["trainer"] = dict(trainer.stats)
    result["seconds"] = time.perf_counter() - t0
    return result


# ----------------------------------------------------------------------------------------- 3. membership inference
def mia_run(model_name: str) -> dict:
    hidden, l2 = MIA_MODELS[model_name]
    t0 = time.perf_counter()
    splits = heart_splits()
    model, engine, fit = trained(splits, hidden, l2, 0)
    trainer = memoised_trainer(l2)
    ctx = AuditContext(model, engine, splits, loss=LOSS, l2=l2, train_fn=trainer, seed=0)
    found = run_plugin("privacy", ctx, {"budget": BUDGET, "reference_models": REFERENCE_MODELS, "trust_top": 3,
                                        "seed": 0})         # the seed of the committed results (not derived)
    d = found.to_dict()
    loss_m, loss_h = ctx.losses("train"), ctx.losses("holdout")
    return {"model": model_name, "hidden": hidden, "l2": l2, "fit": fit,
            "train_accuracy": accuracy(ctx, "train"), "test_accuracy": accuracy(ctx, "test"),
            "holdout_accuracy": accuracy(ctx, "holdout"),
            "mean_loss_members": float(loss_m.mean()), "mean_loss_nonmembers": float(loss_h.mean()),
            "n_members": found.n_members, "n_nonmembers": found.n_nonmembers, "signals": found.signals,
            "attacks": attack_summary(d["attacks"]), "n_flagged": found.n_flagged, "threshold": found.threshold,
            "realised_fpr_on_calibration": found.realised_fpr_on_calibration,
            "attacks_by_sex": {g: ({"auc": m["auc"]} if m and "auc" in m else None)
                               for g, m in d["attacks_by_group"]["sex"]["loss"].items()},
            "trust": {k: v for k, v in found.trust.items() if k != "records"}, "notes": found.notes,
            "trainer": dict(trainer.stats), "seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------------------------------- 4. calibration
def clopper_pearson(k: int, m: int) -> list[float]:
    from scipy.stats import binomtest
    ci = binomtest(k, m).proportion_ci(confidence_level=0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def calibration_run(model_name: str, halvings: int, budgets: list[float]) -> dict:
    hidden, l2, with_fn = CALIBRATION_MODELS[model_name]
    t0 = time.perf_counter()
    base = heart_splits(sizes=(460, 100), holdout_halves=(0, False))
    model, engine, fit = trained(base, hidden, l2, 0)
    trainer = memoised_trainer(l2) if with_fn else None
    rows = []
    for h in range(halvings):
        for swap in (False, True):
            splits = heart_splits(sizes=(460, 100), holdout_halves=(h, swap))
            assert np.array_equal(splits["train"].X, base["train"].X)
            ctx = AuditContext(model, engine, splits, loss=LOSS, l2=l2, train_fn=trainer, seed=0)
            for b in budgets:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", AuditkitWarning)
                    found = run_plugin("privacy", ctx, {"budget": b, "reference_models": REFERENCE_MODELS,
                                                        "trust_top": 0, "seed": 0})
                    rec = recompute_risk(ctx, b, extra="holdout_b")
                m_a, m_b = splits["holdout"].n, splits["holdout_b"].n
                k = int(np.sum(rec["risk_x"] > found.threshold))
                rows.append({"halving": h, "swap": swap, "budget": b, "m_calibration": m_a, "m_other": m_b,
                             "threshold": found.threshold,
                             "recomputation_matches_plugin": bool(math.isclose(found.threshold, rec["threshold"],
                                                                               rel_tol=1e-9, abs_tol=1e-12)),
                             "realised_fpr_calibration": found.realised_fpr_on_calibration,
                             "false_flags_other_half": k, "realised_fpr_other_half": k / m_b,
                             "clopper_pearson_95": clopper_pearson(k, m_b),
                             "expected_rate": flag_false_alarm_rate(m_a, b),
                             "member_flag_rate": found.n_flagged / found.n_members})
    summary = []
    for b in budgets:
        rs = [r for r in rows if r["budget"] == b]
        ks = sum(r["false_flags_other_half"] for r in rs)
        ms = sum(r["m_other"] for r in rs)
        rates = np.array([r["realised_fpr_other_half"] for r in rs])
        m_a = rs[0]["m_calibration"]
        j = math.floor(b * m_a + 1e-12)
        summary.append({"budget": b, "expected_rate": rs[0]["expected_rate"], "n_evaluations": len(rs),
                        "mean_realised_fpr_other_half": float(rates.mean()),
                        "sd_realised_fpr_other_half": float(rates.std(ddof=1)) if len(rs) > 1 else None,
                        "sd_expected_one_calibration": float(math.sqrt(
                            # Beta(j+1, m−j) spread of the conditional rate plus binomial noise of the other half
                            (j + 1) * (m_a - j) / ((m_a + 1) ** 2 * (m_a + 2))
                            + rs[0]["expected_rate"] * (1 - rs[0]["expected_rate"]) / rs[0]["m_other"])),
                        "pooled_false_flags": ks, "pooled_nonmembers": ms,
                        "pooled_clopper_pearson_95_not_independent": clopper_pearson(ks, ms),
                        "min_rate": float(rates.min()), "max_rate": float(rates.max()),
                        "all_recomputations_match": all(r["recomputation_matches_plugin"] for r in rs),
                        "mean_member_flag_rate": float(np.mean([r["member_flag_rate"] for r in rs]))})
    return {"model": model_name, "hidden": hidden, "l2": l2, "with_training_function": with_fn, "fit": fit,
            "n_train": base["train"].n, "rows": rows, "summary": summary,
            "trainer": dict(trainer.stats) if trainer else None, "seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------------------------------- orchestration
def environment() -> dict:
    import fairlearn
    import scipy
    import sklearn
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, []
    return {"uncommitted_changes": [line[3:] for line in dirty],
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "scikit-learn": sklearn.__version__, "fairlearn": fairlearn.__version__,
            "auditkit": ak.__version__, "git_commit": commit, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}


def mislabel_runs(seeds: list[int], label: str) -> list[dict]:
    runs = []
    for dataset, loader in DATASETS.items():
        base = loader()
        for model_name in MISLABEL_MODELS:
            for seed in seeds:
                r = mislabel_run(dataset, base, model_name, seed)
                d = r["detection"]
                damping = f", damping {r['fit']['damping']:.2g}" if r["fit"]["damping"] else ""
                print(f"  [{label}] {dataset:14s} {model_name:15s} seed {seed}: top10 default "
                      f"{d['default']['top10']['hits']:3d} loss {d['loss']['top10']['hits']:3d} "
                      f"si {d['self_influence']['top10']['hits']:3d} "
                      f"si~ {d['self_influence_leverage']['top10']['hits']:3d} / {r['n_flipped']}; AUC default "
                      f"{d['default']['auc']:.3f} loss {d['loss']['auc']:.3f} si "
                      f"{d['self_influence']['auc']:.3f} si~ {d['self_influence_leverage']['auc']:.3f}; misfit "
                      f"{r['n_misfit']}; converged {r['fit']['converged']}  ({r['seconds']['total']:.1f}s{damping})",
                      flush=True)
                runs.append(r)
    return runs


def build_checks(summary: list[dict], canary: list[dict], mia: list[dict], carried: dict) -> list[dict]:
    checks = [{"part": "mislabels", "carried_over": "mislabels" in carried, **s["check"]} for s in summary]
    for r in canary:
        mode = "engine only" if r["hidden"] == 0 else "with training function"
        a = r["audits"][mode]
        checks.append({"part": "canaries", "carried_over": "canaries" in carried,
                       "name": f"canary seed {r['canary_seed']} / {r['model']} ({mode}): all {N_CANARIES} canaries "
                               "flagged and in the top 5% of the default risk",
                       "passed": a["passed_all_flagged_top5"], "flagged": a["n_canaries_flagged"],
                       "in_top5pct": a["canaries_in_top5pct"], "worst_rank": a["max_canary_rank_default"]})
    if mia:
        auc = {r["model"]: r["attacks"]["loss"]["auc"] for r in mia}
        over, reg = list(MIA_MODELS)
        checks.append({"part": "membership", "carried_over": "membership" in carried,
                       "name": "over-fit MLP has a higher LOSS-attack AUC than the regularised logistic regression",
                       "passed": bool(auc[over] > auc[reg]), "over_fit_auc": auc[over], "regularised_auc": auc[reg]})
    return checks


def earlier_rounds(previous: dict | None) -> list[dict]:
    """The mislabel results of earlier pre-registered rounds (other rules, spent seeds), kept unchanged: those
    already stored in ``previous``, plus ``previous``'s own mislabel part when it was run under another
    pre-registration (its runs, summaries, settings, date and commit)."""
    if previous is None:
        return []
    rounds = list(previous.get("mislabels_earlier_rounds", []))
    if previous["settings"].get("preregistration") != PREREGISTRATION and previous.get("mislabels", {}).get("runs"):
        st = previous["settings"]
        rounds.append({"preregistration": st.get("preregistration"), "flip_seeds": st["flip_seeds"],
                       "dev_flip_seeds": st.get("dev_flip_seeds", []), "date": previous["environment"]["date"],
                       "git_commit": previous["environment"]["git_commit"],
                       "rendered": previous.get("rendered"), "mislabels": previous["mislabels"]})
    return rounds


def run(args) -> dict:
    """Run the parts named in ``args.parts``; the others are carried over from ``args.carry_from`` (a
    previous results JSON), labelled as such, so the results file stays complete."""
    quick = args.quick
    parts = list(args.parts)
    flip_seeds = args.seeds[:1] if quick else list(args.seeds)
    dev_seeds = [] if quick else list(args.dev_seeds)
    canary_seeds = CANARY_SEEDS[:1] if quick else CANARY_SEEDS
    halvings = 1 if quick else CALIBRATION_HALVINGS
    calib_models = list(CALIBRATION_MODELS)[:2] if quick else list(CALIBRATION_MODELS)
    timings: dict[str, float] = {}
    previous, carried = None, {}
    if set(PARTS) - set(parts):
        if args.carry_from is None or not Path(args.carry_from).exists():
            raise SystemExit(f"--parts {','.join(parts)} leaves out "
                             f"{', '.join(sorted(set(PARTS) - set(parts)))}: give --carry-from RESULTS.json to "
                             "carry those over")
        previous = json.loads(Path(args.carry_from).read_text())
        for part in PARTS:
            if part not in parts:      # a part already carried keeps the date and commit of its own run
                carried[part] = previous.get("carried_over", {}).get(part) or {
                    "from_date": previous["environment"]["date"], "from_commit": previous["environment"]["git_commit"],
                    "note": args.carry_note or "not rerun in this run"}
    earlier = earlier_rounds(previous)
    mislabels = {"runs": [], "summary": [], "dev_runs": [], "dev_summary": []}
    if "mislabels" in parts:
        print("== 1. mislabels", flush=True)
        t = time.perf_counter()
        runs = mislabel_runs(flip_seeds, "evidence")
        dev_runs = mislabel_runs(dev_seeds, "development") if dev_seeds else []
        mislabels = {"runs": runs, "summary": summarise_mislabels(runs), "dev_runs": dev_runs,
                     "dev_summary": summarise_mislabels(dev_runs) if dev_runs else []}
        timings["mislabels"] = time.perf_counter() - t
    else:
        mislabels.update(previous["mislabels"])

    canary = []
    if "canaries" in parts:
        print("== 2. canaries", flush=True)
        t = time.perf_counter()
        for seed in canary_seeds:
            for model_name in CANARY_MODELS:
                r = canary_run(seed, model_name)
                for mode, a in r["audits"].items():
                    print(f"  seed {seed} {model_name:15s} {mode:22s}: {a['n_canaries_flagged']}/10 flagged, "
                          f"{a['canaries_in_top5pct']}/10 in top 5%, worst rank {a['max_canary_rank_default']}, "
                          f"{a['n_flagged']} flags, matches plugin {a['recomputation_matches_plugin']}", flush=True)
                print(f"    leave-one-out: median change of own loss {r['leave_one_out']['median_actual_change']:.2f} "
                      f"({r['seconds']:.0f}s)", flush=True)
                canary.append(r)
        timings["canaries"] = time.perf_counter() - t
    else:
        canary = previous["canaries"]

    mia = []
    if "membership" in parts:
        print("== 3. membership inference", flush=True)
        t = time.perf_counter()
        for model_name in MIA_MODELS:
            r = mia_run(model_name)
            print(f"  {model_name}: " + ", ".join(f"{k} AUC {v['auc']:.3f}" for k, v in r["attacks"].items())
                  + f" ({r['seconds']:.0f}s)", flush=True)
            mia.append(r)
        timings["membership"] = time.perf_counter() - t
    else:
        mia = previous["membership"]

    calibration = []
    if "calibration" in parts:
        print("== 4. flag calibration", flush=True)
        t = time.perf_counter()
        for model_name in calib_models:
            r = calibration_run(model_name, halvings, CALIBRATION_BUDGETS)
            for s in r["summary"]:
                print(f"  {model_name}: budget {s['budget']:.2f}: realised on the other half "
                      f"{s['mean_realised_fpr_other_half']:.4f} (expected {s['expected_rate']:.4f}; range "
                      f"{s['min_rate']:.3f}-{s['max_rate']:.3f})", flush=True)
            calibration.append(r)
        timings["calibration"] = time.perf_counter() - t
    else:
        calibration = previous["calibration"]

    checks = build_checks(mislabels["summary"], canary, mia, carried)
    settings = {"split_seed": SPLIT_SEED, "flip_seeds": flip_seeds, "dev_flip_seeds": dev_seeds,
                "flip_fraction": FLIP_FRACTION, "parts_run": parts, "mislabel_models": MISLABEL_MODELS,
                "method": "exact", "dtype": "float64", "fit": "auditkit.fit_model (tol 1e-9)",
                "datasets": DATASET_NOTES, "anchors": ANCHORS, "preregistration": PREREGISTRATION}
    if previous is not None:      # settings of the carried-over parts are those of the run they come from
        settings.update({k: previous["settings"][k] for k in
                         ("canary_seeds", "n_canaries", "reference_models", "budget", "canary_top_share",
                          "calibration_budgets", "calibration_halvings", "canary_models", "mia_models",
                          "calibration_models") if k in previous["settings"]})
    if parts != ["mislabels"]:
        settings.update({"canary_seeds": canary_seeds, "n_canaries": N_CANARIES, "reference_models": REFERENCE_MODELS,
                         "budget": BUDGET, "canary_top_share": TOP_SHARE_CANARY,
                         "calibration_budgets": CALIBRATION_BUDGETS, "calibration_halvings": halvings,
                         "canary_models": CANARY_MODELS, "mia_models": MIA_MODELS,
                         "calibration_models": {k: CALIBRATION_MODELS[k] for k in calib_models}})
    if previous is not None:
        for part in carried:
            if part in previous.get("timings_seconds", {}):
                timings[f"{part} (carried over)"] = previous["timings_seconds"][part]
    return {"benchmark": "privacy_detection", "quick": quick, "settings": settings, "environment": environment(),
            "carried_over": carried, "mislabels": mislabels,
            "mislabels_earlier_rounds": earlier, "canaries": canary, "membership": mia,
            "calibration": calibration, "checks": checks, "all_passed": all(c["passed"] for c in checks),
            "timings_seconds": timings}


# ----------------------------------------------------------------------------------------- report
def _f(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


ROUND1_LABELS = {"default": "(a) default of that round (misfit by loss, then ℓ + s̃)"}
SCORE_LABELS = {"default": "(a) default (with a training function: misfit by loss, then rank mean of loss and "
                           "out-of-fold loss)",
                "loss": "(b) loss",
                "self_influence": "(c) self-influence", "self_influence_leverage": "(d) leverage-corrected s̃",
                "estimated_held_out_loss": "(e) ℓ + s̃ alone", "oracle_clean_model_loss": "(f) oracle: clean-model loss",
                "engine_default": "(g) engine-only default (misfit by loss, then ℓ + s̃)",
                "out_of_fold_loss": "(h) out-of-fold loss alone",
                "misfit_then_out_of_fold": "(i) misfit by loss, then out-of-fold loss",
                "rank_mean_loss_out_of_fold": "(j) mean rank of loss and out-of-fold loss"}


def _seed_range(seeds: list[int]) -> str:
    if seeds and list(seeds) == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def preregistration_markdown(pr: dict | None = None, title: str = "## Pre-registration (data-quality default "
                             "ranking, mislabels)", constant: str = "PREREGISTRATION") -> list[str]:
    """A pre-registration (default: ``PREREGISTRATION``), printed verbatim."""
    pr = pr or PREREGISTRATION
    return [title, "",
            f"Registered {pr['registered']}; the commit that registered it is in the git history of "
            f"`benchmarks/privacy_detection.py` (constant `{constant}`).", "",
            f"- **Rule.** {pr['rule']}", f"- **Why.** {pr['why']}", f"- **Evidence.** {pr['evidence']}",
            f"- **Criterion.** {pr['criterion']}", f"- **Handling.** {pr['handling']}",
            f"- **Reported, not deciding.** {pr['reported_not_deciding']}", f"- **After.** {pr['after']}", ""]


def carried_markdown(report: dict, part: str) -> list[str]:
    c = report.get("carried_over", {}).get(part)
    if not c:
        return []
    return [f"*Not rerun in this run: carried over unchanged from the run of {c['from_date']} (commit "
            f"{str(c['from_commit'])[:10]}). {c['note']}*", ""]


def mislabel_markdown(summary: list[dict], runs: list[dict], *, detailed: bool, round1: bool = False) -> list[str]:
    """Tables of one set of mislabel runs; ``round1``: the earlier round, whose default was the engine-only rule."""
    L: list[str] = []
    labels = {**SCORE_LABELS, **(ROUND1_LABELS if round1 else {})}
    if not detailed:
        L += ["| data set | model | misfit records per seed (top 10% = n/10) | top 10%: default / loss / s / s̃ / ℓ + s̃ "
              "| default ≥ best rival? | AUC default / loss / s / s̃ |", "|---|---|---|---|---|---|"]
        for s in summary:
            m = s["mean"]
            keys = ("default", "loss", "self_influence", "self_influence_leverage", "estimated_held_out_loss")
            L.append(f"| {s['dataset']} | {s['model']} | {', '.join(map(str, s['misfit_per_seed']))} "
                     f"({s['n_top10']}) | " + " / ".join(f"{m[k]['top10_hits']:.1f}" for k in keys)
                     + f" | {'yes' if s['check']['passed'] else 'no'} ({s['check']['seeds_satisfying']}/"
                     f"{s['check']['n_seeds']} seeds) | " + " / ".join(f"{m[k]['auc']:.3f}" for k in keys[:4]) + " |")
        L.append("")
    for s in summary if detailed else []:
        L += [f"#### {s['dataset']} — {s['model']}", "",
              f"n_train {s['n_train']}, {s['n_flipped']} flipped; train accuracy on the noisy labels "
              f"{s['train_accuracy_mean']:.3f}, test accuracy {s['test_accuracy_mean']:.3f}; records the model "
              f"misfits (ℓ > log 2) per seed {', '.join(map(str, s['misfit_per_seed']))} (top 10% = {s['n_top10']} "
              f"places). All fits converged: {s['all_converged']}"
              + (f" (not converged: seeds {s['not_converged_seeds']})" if s["not_converged_seeds"] else "")
              + f"; damping needed (seeds): {s['damped_seeds'] or 'none'}; plugin's top 20% identical to "
              f"the documented rule: {s['plugin_agreement_all']}.", "",
              "| ranking | top 10%: found (share) | top 20%: found (share) | AUC (sd over seeds) |",
              "|---|---|---|---|"]
        for key, m in s["mean"].items():
            L.append(f"| {labels[key]} | {m['top10_hits']:.1f} ({m['top10_recall']:.1%}) | "
                     f"{m['top20_hits']:.1f} ({m['top20_recall']:.1%}) | {_f(m['auc'])} ({_f(m['auc_sd'])}) |")
        conv = s["top10_hits_converged_fits_only"]
        if s["not_converged_seeds"] and conv["default"] is not None:
            skipped = ", ".join(map(str, s["not_converged_seeds"]))
            L += ["", f"Without the seeds whose fit did not converge ({skipped}), top 10% default / loss / s / s̃: "
                  + " / ".join(f"{conv[k]:.1f}" for k in conv) + "."]
        L += ["", "Paired, top 10%, default minus rival over seeds: "
              + "; ".join(f"{RIVAL_NAMES[k]} {v['mean']:+.1f} (95% {_ci(v['ci95'])}; default ahead / tied / behind "
                          f"in {v['wins']} / {v['ties']} / {v['losses']} seeds)"
                          for k, v in s["paired_top10_default_minus"].items()) + ".", ""]
    L += ["Per seed (top-10% hits default / loss / s / s̃; AUC default / loss / s / s̃; misfit records):", "",
          "| data set | model | seed | top 10% hits | AUC | misfit | converged (‖∇R‖∞) | damping |",
          "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        d = r["detection"]
        keys = ("default", "loss", "self_influence", "self_influence_leverage")
        L.append(f"| {r['dataset']} | {r['model']} | {r['seed']} | "
                 + " / ".join(str(d[k]["top10"]["hits"]) for k in keys) + f" of {r['n_flipped']} | "
                 + " / ".join(f"{d[k]['auc']:.3f}" for k in keys) + f" | {r['n_misfit']} | "
                 f"{'yes' if r['fit']['converged'] else 'no'} ({r['fit']['grad_norm']:.0e}) | "
                 f"{r['fit']['damping']:g} |")
    L.append("")
    return L


def _best_pair(s: dict) -> dict:
    return s["paired_top10_default_minus"][s["check"]["best_rival"]]


def _ci(ci) -> str:
    return "n/a" if ci is None else f"{ci[0]:+.1f} to {ci[1]:+.1f}"


RIVAL_NAMES = {"loss": "loss", "self_influence": "s", "self_influence_leverage": "s̃"}


def write_markdown(report: dict, path: Path) -> None:
    env = report["environment"]
    L = ["# Privacy and data-quality detection on real data",
         "",
         f"Generated by `benchmarks/privacy_detection.py`{' --quick' if report['quick'] else ''} on {env['date']} "
         f"(commit {str(env['git_commit'])[:10]}, torch {env['torch']}, numpy {env['numpy']}, scikit-learn "
         f"{env['scikit-learn']}, {env['cpu_count']} CPUs, {env['torch_threads']} torch thread; total "
         f"{report['total_seconds']:.0f} s)."
         + (f" Summaries, checks and text re-rendered from the stored runs on {report['rendered']['date']} (commit "
            f"{str(report['rendered']['git_commit'])[:10]}, `--render-only`); every per-run number is the run's."
            if report.get("rendered") else ""),
         "",
         "Models are trained with `auditkit.fit_model` to a minimum of mean cross-entropy + (l2/2)‖θ‖² (float64); "
         "influence with the exact solver. Self-influence `s` = (1/n) gᵀH⁻¹g ≈ rise of a record's own loss if it "
         "were removed and the model retrained; `s̃` the same with the record's own curvature taken out of H "
         "(leverage-corrected). Data: " + "; ".join(f"**{k}**: {v}" for k, v in DATASET_NOTES.items()) + ".",
         ""]
    if env.get("uncommitted_changes"):
        L += ["Uncommitted changes in the working tree when it ran (shared tree; other work in progress): "
              + ", ".join(f"`{f}`" for f in env["uncommitted_changes"]) + ".", ""]
    L += preregistration_markdown()
    L += ["## Acceptance", "",
          "Mislabels: as pre-registered above, on the seeds "
          + _seed_range(report["settings"]["flip_seeds"]) + " only; the rivals are the loss, plain self-influence "
          "and leverage-corrected self-influence, compared on the mean over seeds of the flipped records in the top "
          "10%; ties pass. Canaries and membership: fixed before their run, not tuned after it.", ""]
    ml_checks = [c for c in report["checks"] if c["part"] == "mislabels"]
    if ml_checks:
        n_pass = sum(c["passed"] for c in ml_checks)
        L += [f"**Issue point “on both mislabel data sets the default finds at least as many flipped records in the "
              f"top 10% as the better of loss and self-influence”: {'MET' if n_pass == len(ml_checks) else 'NOT MET'}"
              f"** ({n_pass} of {len(ml_checks)} configurations pass).", ""]
    for c in report["checks"]:
        extra = ""
        if c["part"] == "mislabels":
            extra = (f" — default {c['default_top10_hits']:.1f} vs best rival ({c['best_rival']}) "
                     f"{c['best_rival_top10_hits']:.1f}; {c['seeds_satisfying']}/{c['n_seeds']} seeds satisfy it")
        elif c["part"] == "canaries":
            extra = f" — {c['flagged']}/10 flagged, {c['in_top5pct']}/10 in the top 5%, worst rank {c['worst_rank']}"
        else:
            extra = f" — {c['over_fit_auc']:.3f} vs {c['regularised_auc']:.3f}"
        if c.get("carried_over"):
            extra += " (carried over, not rerun: see the section)"
        L.append(f"- **{'PASS' if c['passed'] else 'FAIL'}**: {c['name']}{extra}")
    ml = report["mislabels"]
    L += ["", "## 1. Mislabel detection (10% of training labels flipped)", "",
          "Flipped records found in the top 10% / top 20% of each ranking (share of all flipped records found; at "
          "10% flipped the top 10% holds as many records as were flipped, so the share is also the precision), "
          "and the AUC.", ""]
    L += carried_markdown(report, "mislabels")
    registered = report["settings"]["flip_seeds"] == FLIP_SEEDS
    L += [f"### 1a. Evidence: seeds {_seed_range(report['settings']['flip_seeds'])}"
          + (" (fresh, pre-registered)" if registered else " (NOT the pre-registered seeds: no evidence)"), ""]
    L += mislabel_markdown(ml["summary"], ml["runs"], detailed=True)
    if ml.get("dev_runs"):
        L += [f"### 1b. Development seeds {_seed_range(report['settings']['dev_flip_seeds'])} (seen while studying "
              "the rule; not evidence, no verdict)", "",
              "Rerun with the code of this run (so they can differ slightly from the earlier results file: the "
              "MLP fits are not bit-identical across code versions).", ""]
        L += mislabel_markdown(ml["dev_summary"], ml["dev_runs"], detailed=False)
    for i, er in enumerate(report.get("mislabels_earlier_rounds", [])):
        em = er["mislabels"]
        checks = [s["check"] for s in em["summary"]]
        n_pass = sum(c["passed"] for c in checks)
        L += [f"### 1{chr(ord('c') + 2 * i)}. Earlier round, evidence seeds {_seed_range(er['flip_seeds'])}: the "
              "engine-only rule (spent seeds; kept as it was)", "",
              f"Run on {er['date']} (commit {str(er['git_commit'])[:10]}) under its own pre-registration, printed "
              f"below; outcome: **{n_pass} of {len(checks)} configurations passed**, the issue point was "
              f"{'met' if n_pass == len(checks) else 'not met'} by that rule. Its default was the engine-only "
              "ranking (no training function); the current rule replaced it for contexts with a training "
              "function, and it remains the default without one.", ""]
        if er.get("preregistration"):
            L += preregistration_markdown(er["preregistration"], "#### Its pre-registration",
                                          "PREREGISTRATION_ROUND1")
        L += [f"- **{'PASS' if c['passed'] else 'FAIL'}** {c['name'].split(':')[0]}: default "
              f"{c['default_top10_hits']:.1f} vs best rival ({c['best_rival']}) {c['best_rival_top10_hits']:.1f}; "
              f"{c['seeds_satisfying']}/{c['n_seeds']} seeds satisfy it" for c in checks] + [""]
        L += mislabel_markdown(em["summary"], em["runs"], detailed=True, round1=True)
        if em.get("dev_runs"):
            L += [f"### 1{chr(ord('d') + 2 * i)}. Earlier round, development seeds {_seed_range(er['dev_flip_seeds'])} "
                  "(seen while studying that rule; no verdict)", ""]
            L += mislabel_markdown(em["dev_summary"], em["dev_runs"], detailed=False, round1=True)
    L += ["", "## 2. Canaries", "",
          f"{N_CANARIES} canaries per seed (design of `tests/audits/test_privacy_plugin.py`); privacy plugin with "
          f"budget {BUDGET}, {REFERENCE_MODELS} reference models when a training function is given. Ranks: 0 = "
          "riskiest of the training records; top 5% = rank < "
          f"{TOP_SHARE_CANARY * 560:.0f}.", ""]
    L += carried_markdown(report, "canaries")
    for r in report["canaries"]:
        L += [f"### canary seed {r['canary_seed']} — {r['model']}", ""]
        for mode, a in r["audits"].items():
            L += [f"**{mode}** (signals {', '.join(a['signals'])}): {a['n_canaries_flagged']}/10 canaries flagged, "
                  f"{a['canaries_in_top5pct']}/10 in the top 5%; threshold {a['threshold']:.3f}; {a['n_flagged']} "
                  f"members flagged ({a['flagged_non_canaries']} not canaries); realised FPR on the calibration "
                  f"non-members {a['realised_fpr_on_calibration']:.4f} (expected false-alarm rate "
                  f"{a['expected_false_alarm_rate']:.4f}); recomputed risk matches the plugin: "
                  f"{a['recomputation_matches_plugin']}."
                  + (f" Trust check (top 10 retrained): Spearman {_f(a['trust'].get('spearman'))}, median actual/"
                     f"predicted {_f(a['trust'].get('median_ratio_actual_to_predicted'), 2)}, "
                     f"{a['trust'].get('underestimated')} underestimated." if a["trust"].get("checked") else "")
                  + (" Notes: " + " ".join(f"“{n}”" for n in a["notes"]) if a["notes"] else ""), "",
                  "| canary | flagged | rank: default risk | s̃ | s | loss (high first) | reference z | risk | z |",
                  "|---|---|---|---|---|---|---|---|---|"]
            for c in a["canaries"]:
                rk = c["ranks"]
                L.append(f"| {c['position']} | {'yes' if c['flagged'] else 'no'} | {rk['default_risk']} | "
                         f"{rk['self_influence_leverage']} | {rk['self_influence']} | {rk['loss_highest_first']} | "
                         f"{rk.get('reference_z', '—')} | {c['risk']:.2f} | {_f(c.get('reference_z'), 2)} |")
            L.append("")
        lo = r["leave_one_out"]
        L += ["Actual leave-one-out retraining of each canary (warm start): its own loss before → after removal "
              "(probability of its label), against s̃ and s.", "",
              "| canary | loss before (p) | loss after (p) | actual change | s̃ | s | ‖∇R‖∞ after |",
              "|---|---|---|---|---|---|---|"]
        for c in lo["canaries"]:
            L.append(f"| {c['position']} | {c['loss_before']:.3f} ({c['p_label_before']:.3f}) | {c['loss_after']:.2f} "
                     f"({c['p_label_after']:.2g}) | {c['actual_change']:+.2f} | {c['predicted_leverage']:.3f} | "
                     f"{c['predicted_plain']:.3f} | {c['retrain_grad_norm']:.0e} |")
        L += ["", f"Median actual change {lo['median_actual_change']:.2f} (smallest {lo['min_actual_change']:.2f}); "
              f"for comparison the median s̃ of the other training records is "
              f"{lo['median_self_influence_leverage_non_canaries']:.4f} (99th percentile "
              f"{lo['p99_self_influence_leverage_non_canaries']:.4f}).", ""]
    L += ["## 3. Membership inference: over-fit vs regularised (heart disease, clean labels)", ""]
    L += carried_markdown(report, "membership")
    L += ["| model | train / test acc. | mean loss members / non-members | attack | AUC | TPR@1% | TPR@0.1% | "
          "advantage |", "|---|---|---|---|---|---|---|---|"]
    for r in report["membership"]:
        for k, a in r["attacks"].items():
            L.append(f"| {r['model']} | {r['train_accuracy']:.3f} / {r['test_accuracy']:.3f} | "
                     f"{r['mean_loss_members']:.3f} / {r['mean_loss_nonmembers']:.3f} | {k} | {_f(a['auc'])} | "
                     f"{_f(a['tpr_at_1%'])} | {_f(a['tpr_at_0.1%'])} | {_f(a['advantage'])} |")
    L += ["", "TPR@0.1% is n/a: with " + str(report["membership"][0]["n_nonmembers"]) + " non-members a single false "
          "positive is already above 0.1%, so that rate cannot be resolved (the plugin reports it as unresolved). "
          + " ".join(f"{r['model']}: fit converged {r['fit']['converged']} (‖∇R‖∞ {r['fit']['grad_norm']:.0e}), "
                     f"damping {r['fit']['damping']:g}, {r['n_flagged']} members flagged."
                     for r in report["membership"]),
          "", "## 4. Flag calibration on a second half of non-members (heart disease, 460 / 100 / 360)", "",
          "The plugin calibrates on one half of the holdout (180 records); the realised false-positive rate of its "
          "threshold is measured on the other 180, whose risk is recomputed on the calibration scale. Each "
          "halving is used in both directions (the two directions are not independent).", ""]
    L += carried_markdown(report, "calibration")
    L += ["| model | budget | expected rate | mean realised (other half) | sd over evaluations (expected ≈) | "
          "range | pooled false flags | pooled CP 95% (not independent) | member flag rate |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in report["calibration"]:
        for s in r["summary"]:
            L.append(f"| {r['model']} | {s['budget']:.2f} | {s['expected_rate']:.4f} | "
                     f"{s['mean_realised_fpr_other_half']:.4f} | {_f(s['sd_realised_fpr_other_half'], 4)} "
                     f"({s['sd_expected_one_calibration']:.4f}) | {s['min_rate']:.3f}–{s['max_rate']:.3f} | "
                     f"{s['pooled_false_flags']}/{s['pooled_nonmembers']} | "
                     f"{s['pooled_clopper_pearson_95_not_independent'][0]:.4f}–"
                     f"{s['pooled_clopper_pearson_95_not_independent'][1]:.4f} | {s['mean_member_flag_rate']:.4f} |")
    L += ["", "Single evaluations with a Clopper–Pearson 95% interval on the 180 other-half non-members:", "",
          "| model | halving | direction | budget | false flags | realised | CP 95% |", "|---|---|---|---|---|---|---|"]
    for r in report["calibration"]:
        for row in r["rows"]:
            L.append(f"| {r['model']} | {row['halving']} | {'B→A' if row['swap'] else 'A→B'} | {row['budget']:.2f} | "
                     f"{row['false_flags_other_half']} | {row['realised_fpr_other_half']:.4f} | "
                     f"{row['clopper_pearson_95'][0]:.4f}–{row['clopper_pearson_95'][1]:.4f} |")
    L += ["", "## Reading the results", "", interpretation(report), "",
          "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in report["timings_seconds"].items()) + ".", ""]
    path.write_text("\n".join(L))


def interpretation(report: dict) -> str:
    """Paragraphs written from the measured numbers (nothing about the outcome is hard-coded)."""
    parts = []
    summ = report["mislabels"]["summary"]
    runs = report["mislabels"]["runs"]
    lr = [s for s in summ if s["model"].startswith("logreg")]
    mlp = [s for s in summ if s["model"].startswith("mlp")]
    failed = [s for s in summ if not s["check"]["passed"]]
    best = max(summ, key=lambda s: s["mean"]["default"]["auc"])
    worst = min(summ, key=lambda s: s["mean"]["default"]["auc"])
    text = (f"**Mislabels.** The default ranking reaches AUC {_f(worst['mean']['default']['auc'])}–"
            f"{_f(best['mean']['default']['auc'])} and finds "
            f"{min(s['mean']['default']['top10_recall'] for s in summ):.0%}–"
            f"{max(s['mean']['default']['top10_recall'] for s in summ):.0%} of the flipped labels in the top 10% "
            f"({min(s['mean']['default']['top20_recall'] for s in summ):.0%}–"
            f"{max(s['mean']['default']['top20_recall'] for s in summ):.0%} in the top 20%). "
            "Against the anchors (dattri: AUC ≈ 0.98 for logistic regression on MNIST, 0.84–0.87 for an MLP; "
            "Kronfluence on CIFAR-10: ≈ 80% in the top 10%, 97% in the top 20%): logistic regression "
            + ", ".join(f"{s['dataset']} AUC {_f(s['mean']['default']['auc'])} "
                        f"({s['mean']['default']['auc'] - 0.98:+.2f} against 0.98), "
                        f"{s['mean']['default']['top10_recall']:.0%} in the top 10% "
                        f"({100 * (s['mean']['default']['top10_recall'] - 0.80):+.0f} points against 80%)" for s in lr)
            + "; MLP " + ", ".join(f"{s['dataset']} {s['model']} AUC {_f(s['mean']['default']['auc'])}" for s in mlp)
            + " (dattri's MLP: 0.84–0.87). ")
    oracle = [s for s in lr if "oracle_clean_model_loss" in s["mean"]]
    if oracle:
        text += ("Most of the gap is the data, not the scorer: a logistic regression trained on the *clean* labels, "
                 "which never saw a flip, ranks the noisy labels only at "
                 + ", ".join(f"AUC {_f(s['mean']['oracle_clean_model_loss']['auc'])} on {s['dataset']} "
                             f"({s['mean']['oracle_clean_model_loss']['top10_recall']:.0%} in the top 10%), so of the "
                             f"{0.98 - s['mean']['default']['auc']:.2f} AUC short of 0.98 "
                             f"{0.98 - s['mean']['oracle_clean_model_loss']['auc']:.2f} is out of any detector's "
                             f"reach that uses this model class and "
                             f"{s['mean']['oracle_clean_model_loss']['auc'] - s['mean']['default']['auc']:.2f} is the "
                             f"cost of training on the flipped labels" for s in oracle)
                 + ". These tabular data are noisy already (test accuracy "
                 + ", ".join(f"{s['dataset']} {s['test_accuracy_mean']:.2f}" for s in lr)
                 + "): many genuine records look as wrong as a flipped one, unlike MNIST digits. ")
    many = [s for s in summ if s["misfit_mean"] >= 0.05 * s["n_train"]]
    few = [s for s in summ if s["misfit_mean"] < 0.05 * s["n_train"]]

    def hits(s, key):
        return s["mean"][key]["top10_hits"]

    if many:
        better = sum(hits(s, "loss") >= max(hits(s, "self_influence"), hits(s, "self_influence_leverage"))
                     for s in many)
        text += (f"Where the model misfits many records ({', '.join(s['dataset'] + ' ' + s['model'] for s in many)}) "
                 f"the loss finds at least as many flips in the top 10% as either self-influence in {better} of "
                 f"{len(many)} configurations (loss / s / s̃: "
                 + ", ".join(f"{hits(s, 'loss'):.1f} / {hits(s, 'self_influence'):.1f} / "
                             f"{hits(s, 'self_influence_leverage'):.1f}" for s in many)
                 + "; AUC loss / s: " + ", ".join(f"{_f(s['mean']['loss']['auc'])} / "
                                                   f"{_f(s['mean']['self_influence']['auc'])}" for s in many) + "). ")
    if few:
        better = sum(max(hits(s, "self_influence"), hits(s, "self_influence_leverage")) >= hits(s, "loss") for s in few)
        text += (f"Where it fits (almost) everything ({', '.join(s['dataset'] + ' ' + s['model'] for s in few)}: "
                 + ", ".join(f"{s['misfit_mean']:.1f}" for s in few) + " misfit records) the loss separates less "
                 f"and self-influence finds at least as many in {better} of {len(few)} (loss / s / s̃: "
                 + ", ".join(f"{hits(s, 'loss'):.1f} / {hits(s, 'self_influence'):.1f} / "
                             f"{hits(s, 'self_influence_leverage'):.1f}" for s in few) + "). ")
    gaps = [s["check"]["default_top10_hits"] - s["check"]["best_rival_top10_hits"] for s in summ]
    text += (f"The default ranking (with a training function) follows the loss in the first regime and the rank mean "
             f"of loss and out-of-fold loss in the second; against the best "
             f"single score it is within {min(gaps):+.1f} to {max(gaps):+.1f} flipped records in the top 10% "
             f"(of {min(s['n_flipped'] for s in summ)}–{max(s['n_flipped'] for s in summ)}), and it passes "
             f"{len(summ) - len(failed)} of {len(summ)} configurations. ")
    for s in failed:
        rs = [r for r in runs if r["dataset"] == s["dataset"] and r["model"] == s["model"]]
        slots = rs[0]["detection"]["default"]["top10"]["n_top"]
        best = s["check"]["best_rival"]
        pair = s["paired_top10_default_minus"][best]
        text += (f"**It fails for {s['dataset']} / {s['model']}**: default {s['check']['default_top10_hits']:.1f} "
                 f"against {s['check']['best_rival']} {s['check']['best_rival_top10_hits']:.1f} flipped records in "
                 f"the top 10% ({s['check']['seeds_satisfying']}/{s['check']['n_seeds']} seeds satisfy it; paired "
                 f"difference {pair['mean']:+.1f}, 95% interval {_ci(pair['ci95'])}"
                 + ("" if pair["ci95"] is None else ", which includes zero" if pair["ci95"][0] <= 0 <= pair["ci95"][1]
                    else ", which excludes zero") + "). ")
        lo, hi = min(r["n_misfit"] for r in rs), max(r["n_misfit"] for r in rs)
        short = [r for r in rs if r["n_misfit"] < slots]
        if best == "loss":
            text += (f"There the model misfits {lo}–{hi} records per seed against the {slots} places of the top 10%. "
                     "The misfit block is ranked by the loss, so the default differs from the loss ranking only in "
                     f"the places left after it, in {len(short)} of {len(rs)} seeds "
                     f"({sum(slots - r['n_misfit'] for r in short)} places in all); there the rank mean of loss and "
                     "out-of-fold loss, among records the model fits, catches fewer flips than the loss does among "
                     "the same records. ")
        elif hi <= 0.01 * s["n_train"]:
            held = s["mean"]["out_of_fold_loss"]["top10_hits"]
            alone = s["mean"]["self_influence_leverage"]["top10_hits"]
            text += (f"There the model misfits {lo}–{hi} records per seed, so the default is the rank mean in "
                     f"(almost) every place: the out-of-fold loss alone finds {held:.1f}, s̃ alone {alone:.1f}. ")
        else:
            text += f"There the model misfits {lo}–{hi} records per seed (top 10%: {slots} places). "
        conv = s["top10_hits_converged_fits_only"]
        if s["not_converged_seeds"] and conv["default"] is not None:
            text += (f"Without the seeds whose fit did not converge ({', '.join(map(str, s['not_converged_seeds']))}) "
                     f"the default finds {conv['default']:.1f} against {best} {conv[best]:.1f}: "
                     + ("the same verdict. " if (conv["default"] >= max(conv[k] for k in RIVAL_NAMES)) == s["check"]
                        ["passed"] else "the verdict would differ (reported, not deciding). "))
    passed_close = [s for s in summ if s["check"]["passed"]]
    if summ:
        text += ("Paired differences default − best rival in the top 10% (mean, 95% interval over seeds): "
                 + "; ".join(f"{s['dataset']} / {s['model']} {_best_pair(s)['mean']:+.1f} "
                             f"({_ci(_best_pair(s)['ci95'])})" for s in summ)
                 + f" ({len(passed_close)} of {len(summ)} pass). ")
    if failed:
        inside = all(_best_pair(s)["ci95"] is not None and _best_pair(s)["ci95"][0] <= 0 for s in failed)
        text += (f"So the issue's point is **not met** by this rule on these seeds: {len(failed)} of {len(summ)} "
                 "configurations fail the pre-registered criterion"
                 + (f", each by at most {max(-_best_pair(s)['mean'] for s in failed):.1f} flipped records on "
                    "average and each with a 95% interval that includes zero: small shortfalls, but the criterion "
                    "is the mean, and it was fixed before the run. " if inside else ". ")
                 + "A different rule would need its own pre-registration and fresh seeds (30 onward); seeds 0–29 "
                 "are spent. ")
    elif summ:
        text += (f"So the issue's point is **met** on these seeds: all {len(summ)} configurations pass the "
                 "pre-registered criterion, with a training function (the engine-only default of round 1, which "
                 "remains the default without one, passed 3 of 6; see below). ")
    if summ and runs and "out_of_fold" in runs[0]["seconds"]:
        text += ("Cost of the out-of-fold losses (5 extra trainings, one thread), mean seconds per run against the "
                 "original fit and engine: " + "; ".join(
                     f"{s['dataset']} / {s['model']} {np.mean([r['seconds']['out_of_fold'] for r in rs]):.1f} vs "
                     f"{np.mean([r['seconds']['fit_and_engine'] for r in rs]):.1f}"
                     for s in summ for rs in [[r for r in runs if r['dataset'] == s['dataset']
                                              and r['model'] == s['model']]]) + ". ")
    damped = [r for r in runs if r["fit"]["damping"] > 0]
    for r in damped:
        text += (f"{r['dataset']} / {r['model']} seed {r['seed']}: training stopped at ‖∇R‖∞ "
                 f"{r['fit']['grad_norm']:.1e} "
                 f"(converged: {r['fit']['converged']}) and the engine raised SingularHessianError "
                 f"(“{r['fit']['singular_message'].split(':')[0]}”); rerun with the suggested damping "
                 f"{r['fit']['damping']:g}. ")
    parts.append(text)

    text = "**Canaries.** "
    for r in report["canaries"]:
        a0, a1 = r["audits"]["engine only"], r["audits"]["with training function"]
        changes = [c["actual_change"] for c in r["leave_one_out"]["canaries"]]
        text += (f"Seed {r['canary_seed']}, {r['model']}: engine alone {a0['n_canaries_flagged']}/10 flagged "
                 f"(worst rank {a0['max_canary_rank_default']}, {a0['n_flagged']} members flagged in all), with "
                 f"reference models {a1['n_canaries_flagged']}/10 (worst rank {a1['max_canary_rank_default']}, "
                 f"{a1['n_flagged']} flagged); removing a canary and retraining raises its own loss by "
                 f"{np.median(changes):.1f} nats (median; {sum(c > 1 for c in changes)}/10 by more than 1). ")
    mlps = [r for r in report["canaries"] if r["hidden"]]
    if mlps:
        flagged = [r["audits"]["engine only"]["n_canaries_flagged"] for r in mlps]
        if max(flagged) == 0:
            text += ("On the MLP the engine alone misses every canary: the MLP fits them (probability of the canary "
                     "label ≥ "
                     + f"{min(c['p_label'] for r in mlps for c in r['audits']['engine only']['canaries']):.2f}"
                     ") so their gradients, and with them their self-influence, are small, while the non-members the "
                     "model gets wrong have large ones; no member rises above the non-members' tail. This is the "
                     "limitation the plugin's note states (“Memorisation may be underestimated …”); the reference "
                     "models recover every canary. ")
        elif min(flagged) < N_CANARIES:
            text += (f"On the MLP the engine alone misses some canaries ({', '.join(map(str, flagged))} of 10 "
                     "flagged), "
                     "the limitation its note states; the reference models recover them. ")
        small = [(r["canary_seed"], c["position"], c["actual_change"]) for r in mlps
                 for c in r["leave_one_out"]["canaries"] if c["actual_change"] < 1]
        if small:
            text += ("Warm-start leave-one-out retraining of the MLP leaves some canaries fitted ("
                     + ", ".join(f"seed {s} canary {j}: {v:+.3f}" for s, j, v in small)
                     + "): the retrained MLP stays in the basin where it memorised them, so this ground truth itself "
                       "understates memorisation for a non-convex model; the reference models, trained on halves of "
                       "the data, still score those canaries high. ")
        under = [r["audits"]["with training function"]["trust"].get("median_ratio_actual_to_predicted") for r in mlps]
        text += ("The plugin's trust check sees the same: on the MLP the top-ranked records moved a median "
                 + " and ".join(f"{u:.0f}×" for u in under if u is not None)
                 + " more on retraining than self-influence predicted.")
    parts.append(text)

    mia = report["membership"]
    parts.append("**Membership inference.** " + " ".join(
        f"{r['model']}: train/test accuracy {r['train_accuracy']:.2f}/{r['test_accuracy']:.2f}, mean loss members "
        f"{r['mean_loss_members']:.3f} vs non-members {r['mean_loss_nonmembers']:.3f}; LOSS AUC "
        f"{_f(r['attacks']['loss']['auc'])}, TPR@1% {_f(r['attacks']['loss']['tpr_at_1%'])}, advantage "
        f"{_f(r['attacks']['loss']['advantage'])}"
        + (f"; reference AUC {_f(r['attacks']['reference']['auc'])}, TPR@1% "
           f"{_f(r['attacks']['reference']['tpr_at_1%'])}" if "reference" in r["attacks"] else "") + "."
        for r in mia) + " The over-fit model leaks far more by AUC and advantage, yet its LOSS attack is weak at low "
        "FPR: the most confident predictions (lowest losses) include many non-members far from the decision "
        "boundary, so the first thresholds admit non-members; the reference attack, which compares each record with "
        "models that did not see it, finds more members at 1% FPR, as LiRA reports. With 180 non-members TPR@1% "
        "rests on one false positive: read it as coarse.")

    bits = []
    ff = []
    inside = []
    flag_rates = []
    for r in report["calibration"]:
        for s in r["summary"]:
            lo, hi = s["pooled_clopper_pearson_95_not_independent"]
            inside.append((lo, hi, s["expected_rate"]))
            flag_rates.append(f"{r['model']} {s['mean_member_flag_rate']:.3f} at {s['budget']:.2f}")
            bits.append(f"{r['model']}, budget {s['budget']:.2f}: {s['mean_realised_fpr_other_half']:.3f} realised vs "
                        f"{s['expected_rate']:.3f} expected (pooled interval {lo:.3f}–{hi:.3f}"
                        f"{'' if lo <= s['expected_rate'] <= hi else ', expected rate OUTSIDE'})")
        ff += [row["false_flags_other_half"] for row in r["rows"] if row["budget"] == min(CALIBRATION_BUDGETS)]
    parts.append("**Flag calibration.** " + "; ".join(bits) + ". "
                 + ("The realised rates on fresh non-members agree with the expected false-alarm rate within the "
                    "noise. " if all(lo <= e <= hi for lo, hi, e in inside) else
                    "Some realised rates fall outside their interval (see above). ")
                 + "At a 1% budget 180 calibration non-members put the "
                 "threshold at the second-largest calibration risk, so a single evaluation on 180 fresh non-members "
                 f"expects about two false flags and ranged here from {min(ff)} to {max(ff)}; only the mean over "
                 "halvings says much about the rate, and the halvings share records, so the pooled interval is "
                 "optimistic. The members' flag rate is the audit's finding, not an error rate ("
                 + ", ".join(flag_rates) + ").")
    return "\n\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, fewer configurations")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="folder for privacy_detection.json and .md (default: benchmarks/results)")
    parser.add_argument("--parts", type=_parts, default=list(PARTS),
                        help=f"comma-separated parts to run, of {','.join(PARTS)} (default: all); the others are "
                             "carried over from --carry-from")
    parser.add_argument("--seeds", type=_seeds, default=FLIP_SEEDS,
                        help="flip seeds of the mislabel evidence, e.g. 5-14 or 5,6 (default: the pre-registered "
                             f"{FLIP_SEEDS[0]}-{FLIP_SEEDS[-1]})")
    parser.add_argument("--dev-seeds", type=_seeds, default=DEV_FLIP_SEEDS,
                        help="flip seeds seen while designing the rule, reported apart and never in a verdict "
                             "(default 0-4; 'none' to skip)")
    parser.add_argument("--carry-from", type=Path, default=None,
                        help="results JSON whose parts not run are carried over (default: OUT/privacy_detection.json)")
    parser.add_argument("--carry-note", default=None,
                        help="why the carried-over parts were not rerun (printed in the results file)")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: recompute the summaries and checks from the runs stored in "
                             "OUT/privacy_detection.json and rewrite it and the markdown")
    args = parser.parse_args(argv)
    if args.carry_from is None:
        args.carry_from = args.out / "privacy_detection.json"
    if args.render_only:
        return render_only(args.out)
    torch.set_num_threads(1)
    start = time.perf_counter()
    report = run(args)
    report["total_seconds"] = time.perf_counter() - start
    report = _clean(json.loads(json.dumps(report, default=_default)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "privacy_detection.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    write_markdown(report, args.out / "privacy_detection.md")
    print()
    for c in report["checks"]:
        print(f"{'PASS' if c['passed'] else 'FAIL'}: {c['name']}")
    print(f"\n{'ALL PASSED' if report['all_passed'] else 'SOME CHECKS FAILED'}; wrote "
          f"{args.out / 'privacy_detection.json'} and {args.out / 'privacy_detection.md'} "
          f"in {report['total_seconds']:.0f}s")
    return 0


def render_only(out: Path) -> int:
    """Rewrite the results from the stored runs (same numbers; summaries, checks and text recomputed)."""
    path = out / "privacy_detection.json"
    report = json.loads(path.read_text())
    ml = report["mislabels"]
    ml["summary"] = summarise_mislabels(ml["runs"])
    ml["dev_summary"] = summarise_mislabels(ml["dev_runs"]) if ml.get("dev_runs") else []
    carried = report.get("carried_over", {})
    report["checks"] = build_checks(ml["summary"], report["canaries"], report["membership"], carried)
    report["all_passed"] = all(c["passed"] for c in report["checks"])
    env = environment()
    report["rendered"] = {"date": env["date"], "git_commit": env["git_commit"],
                          "uncommitted_changes": env["uncommitted_changes"]}
    report = _clean(json.loads(json.dumps(report, default=_default)))
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    write_markdown(report, out / "privacy_detection.md")
    print(f"rewrote {path} and {out / 'privacy_detection.md'} from the stored runs")
    return 0


def _seeds(text: str) -> list[int]:
    """'5-14' → [5, ..., 14]; '5,7' → [5, 7]; 'none' → []."""
    if text.strip().lower() == "none":
        return []
    seeds: list[int] = []
    for piece in text.split(","):
        a, _, b = piece.strip().partition("-")
        seeds += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return seeds


def _parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"parts={text!r}: use a comma-separated list of {', '.join(PARTS)}")
    return [p for p in PARTS if p in parts]


def _clean(value):
    """NaN and ±inf → None (strict JSON), recursively."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    raise SystemExit(main())
