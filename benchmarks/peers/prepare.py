"""Data, trained models and leave-one-out ground truth shared by every library (runs in auditkit's venv).

Writes ``<work>/adult.npz`` (features and labels), ``<work>/<model>.npz`` (trained parameters of the full
model and of the 2,000-record subsample model, the chosen leave-one-out records and their actual loss
changes) and ``<work>/prepare.json`` (what was reached, timings). Peers' processes read only these files
(their venv does not import auditkit).

Featurization (same columns as ``examples/adult_income``): ``adult.data`` (32,561 records) is the training
set; features age, workclass, education_num, marital_status, occupation, relationship, race, sex,
capital_gain, capital_loss, hours_per_week, native_country (``fnlwgt``, a sampling weight, and
``education``, a duplicate of education_num, left out); ``?`` is a missing value; ``auditkit.data.
TabularFeaturizer`` fitted on the training table (numeric standardised, categories one-hot, missing as a
level) → 91 float64 features. Test records: 200 drawn at random (seed 0) from ``adult.test``. Label: income
>50K (class 1) vs <=50K (class 0); two logits and cross-entropy.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import auditkit  # noqa: E402
from auditkit.data import TabularFeaturizer  # noqa: E402
from auditkit.influence import retrain_without  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import L2, N_LOO, N_SUB, N_TEST, SEED, build_model, ce_per_record  # noqa: E402

DATA = ROOT / "examples" / "adult_income" / "data"
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
           "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
           "income"]
FEATURES = ["age", "workclass", "education_num", "marital_status", "occupation", "relationship", "race", "sex",
            "capital_gain", "capital_loss", "hours_per_week", "native_country"]
CATEGORICAL = ["workclass", "marital_status", "occupation", "relationship", "race", "sex", "native_country"]


def read(name: str) -> pd.DataFrame:
    skip = 1 if name == "adult.test" else 0
    df = pd.read_csv(DATA / name, header=None, names=COLUMNS, skiprows=skip, skipinitialspace=True,
                     na_values="?").dropna(how="all")
    df["income"] = df["income"].str.rstrip(".")
    return df


def load(n_train: int | None) -> dict:
    train, test = read("adult.data"), read("adult.test")
    feat = TabularFeaturizer(categorical=CATEGORICAL).fit(train, FEATURES)
    X, Xt = feat.transform(train), feat.transform(test)
    y, yt = (train["income"] == ">50K").to_numpy(np.int64), (test["income"] == ">50K").to_numpy(np.int64)
    rng = np.random.default_rng(SEED)
    if n_train is not None and n_train < len(y):
        keep = np.sort(rng.choice(len(y), n_train, replace=False))
        X, y = X[keep], y[keep]
    pick = np.sort(rng.choice(len(yt), N_TEST, replace=False))
    sub = np.sort(rng.choice(len(y), N_SUB, replace=False))
    return {"X": X, "y": y, "X_test": Xt[pick], "y_test": yt[pick], "sub": sub,
            "feature_names": np.array(feat.feature_names_)}


# logistic regression reaches 1e-9 (Newton); the MLP (6,018 parameters, L-BFGS only) is stopped at 3,000
# L-BFGS iterations or ‖∇R‖_∞ ≤ 1e-8, whichever comes first (what was reached is in prepare.json)
FIT = {"logreg": {"tol": 1e-9, "max_iter": 20000}, "mlp": {"tol": 1e-8, "max_iter": 3000}}
RETRAIN = {"logreg": {"tol": 1e-10, "max_iter": 5000}, "mlp": {"tol": 1e-9, "max_iter": 1500}}


def train(kind: str, X, y, init=None) -> tuple[nn.Module, dict]:
    torch.manual_seed(SEED)
    model = build_model(kind, X.shape[1])
    if init is not None:
        model.load_state_dict(init)
    t0 = time.perf_counter()
    info = auditkit.fit_model(model, torch.as_tensor(X), torch.as_tensor(y), loss="cross_entropy", l2=L2, **FIT[kind])
    info["seconds"] = time.perf_counter() - t0
    return model, info


def flat_state(model: nn.Module, prefix: str) -> dict:
    return {f"{prefix}{k}": v.detach().numpy() for k, v in model.state_dict().items()}


def mean_loss(model, X, y) -> float:
    with torch.no_grad():
        return float(ce_per_record(model(torch.as_tensor(X)), torch.as_tensor(y)).mean())


def per_loss(model, X, y) -> np.ndarray:
    with torch.no_grad():
        return ce_per_record(model(torch.as_tensor(X)), torch.as_tensor(y)).numpy()


def main(work: Path, n_train: int | None, kinds: list[str]) -> None:
    torch.set_num_threads(1)
    work.mkdir(parents=True, exist_ok=True)
    d = load(n_train)
    np.savez(work / "adult.npz", **d)
    report = {"n_train": int(len(d["y"])), "n_features": int(d["X"].shape[1]), "n_test": N_TEST,
              "n_sub": N_SUB, "positive_rate_train": float(d["y"].mean()), "models": {}}
    Xs, ys = d["X"][d["sub"]], d["y"][d["sub"]]
    for kind in kinds:
        model, info = train(kind, d["X"], d["y"])
        # subsample model: warm-started from the full model's parameters, trained to its own minimum
        sub_model, sub_info = train(kind, Xs, ys, init=copy.deepcopy(model.state_dict()))
        # leave-one-out records: half at random, half the highest training losses (method-independent)
        rng = np.random.default_rng(SEED + 1)
        losses = per_loss(sub_model, Xs, ys)
        high = np.argsort(-losses)[: N_LOO // 2]
        rest = np.setdiff1d(np.arange(N_SUB), high)
        chosen = np.concatenate([high, rng.choice(rest, N_LOO - len(high), replace=False)])
        base_self = losses[chosen]
        base_test = per_loss(sub_model, d["X_test"], d["y_test"])
        d_self, d_test = [], []
        t0 = time.perf_counter()
        for j in chosen:
            m = retrain_without(sub_model, torch.as_tensor(Xs), torch.as_tensor(ys), [int(j)],
                                loss="cross_entropy", l2=L2, **RETRAIN[kind])
            d_self.append(per_loss(m, Xs[j:j + 1], ys[j:j + 1])[0] - base_self[len(d_self)])
            d_test.append(per_loss(m, d["X_test"], d["y_test"]) - base_test)
        loo_seconds = time.perf_counter() - t0
        np.savez(work / f"{kind}.npz", **flat_state(model, "full."), **flat_state(sub_model, "sub."),
                 loo_records=chosen, loo_dself=np.array(d_self), loo_dtest=np.stack(d_test, axis=1))
        report["models"][kind] = {
            "n_params": sum(p.numel() for p in model.parameters()), "fit_full": info, "fit_sub": sub_info,
            "train_loss": mean_loss(model, d["X"], d["y"]), "test_loss": mean_loss(model, d["X_test"], d["y_test"]),
            "train_accuracy": float((model(torch.as_tensor(d["X"])).argmax(1).numpy() == d["y"]).mean()),
            "loo_records": chosen.tolist(), "loo_retrain_seconds": loo_seconds,
            "loo_dself_range": [float(np.min(d_self)), float(np.max(d_self))]}
        print(kind, json.dumps(report["models"][kind], default=float)[:600], flush=True)
    (work / "prepare.json").write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--models", default="logreg,mlp")
    a = ap.parse_args()
    main(a.work, a.n_train, a.models.split(","))
