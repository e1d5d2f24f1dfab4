"""One measurement in its own process: ``worker.py LIB METHOD MODEL TASK WORK OUT [--limit m]``.

LIB is auditkit (run with auditkit's venv) or pydvl / kronfluence / dattri / captum (run with the peers'
venv); this file imports only torch, numpy and the library measured. TASK:

- ``self``: fit on all training records, self-influence of every training record (or of the first
  ``--limit`` records; the orchestrator extrapolates the scoring time linearly);
- ``test``: fit, influence of the 200 test records on every training record (or on the first ``--limit``);
- ``loo``: on the 2,000-record subsample model, fit, self-influence of the 24 removed records and
  influence of the 200 test records on them;
- ``epoch`` (LIB auditkit, METHOD -): forward + backward of the mean loss over all training records in
  batches of BATCH, three times.

Before a timed ``self`` or ``test`` run, the same call is made once, untimed, on the first ``WARMUP`` records
(``--no-warmup`` skips it), for every library alike. A ``self`` run also times one epoch (median of three) in
the same process just before, so the ratio "self-influence / one epoch" compares two numbers measured in
one process state.

Every result is converted to auditkit's convention before it is written (OUT, .npz): units of the loss,
``(1/n) ∇ℓ_testᵀ H⁻¹ ∇ℓ_j`` ≈ change of the loss when record j is removed and the model retrained,
positive = j helps. Timings (seconds of fit and of scoring) go in the same file.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset, TensorDataset

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import BATCH, L2, build_model  # noqa: E402

torch.set_num_threads(1)
WARMUP = 1024   # records of the untimed warm-up run before a timed self / test run


def load(work: Path, kind: str, task: str):
    d = np.load(work / "adult.npz")
    m = np.load(work / f"{kind}.npz")
    X, y = torch.as_tensor(d["X"]), torch.as_tensor(d["y"])
    Xt, yt = torch.as_tensor(d["X_test"]), torch.as_tensor(d["y_test"])
    prefix = "full."
    chosen = None
    if task == "loo":
        sub = torch.as_tensor(d["sub"])
        X, y, prefix, chosen = X[sub], y[sub], "sub.", torch.as_tensor(m["loo_records"])
    model = build_model(kind, X.shape[1])
    model.load_state_dict({k[len(prefix):]: torch.as_tensor(m[k]) for k in m.files if k.startswith(prefix)})
    model.eval()
    return model, X, y, Xt, yt, chosen


def targets(task, n, limit, chosen):
    """Training positions scored: all, the first ``limit``, or the leave-one-out records."""
    if task == "loo":
        return chosen
    return torch.arange(n if limit is None else min(limit, n))


# --------------------------------------------------------------------------------------------- auditkit
def run_auditkit(method, model, X, y, Xt, yt, task, idx):
    sys.path.insert(0, str(HERE.parents[1]))
    from auditkit.influence import InfluenceEngine
    opts = {"arnoldi": {"rank": 50}}.get(method, {})
    t0 = time.perf_counter()
    eng = InfluenceEngine(model, "cross_entropy", l2=L2, method=method, chunk_size=BATCH, **opts).fit(X, y)
    t1 = time.perf_counter()
    out = {}
    if task in ("self", "loo"):
        out["self"] = eng.self_influence(None if len(idx) == len(y) else idx.numpy())
    t2 = time.perf_counter()
    if task in ("test", "loo"):
        S = eng.influence(Xt, yt)
        out["test"] = S[:, idx.numpy()]
    t3 = time.perf_counter()
    return out, {"fit_s": t1 - t0, "self_s": t2 - t1, "test_s": t3 - t2}


# --------------------------------------------------------------------------------------------- pyDVL
def run_pydvl(method, model, X, y, Xt, yt, task, idx):
    from pydvl.influence.torch import ArnoldiInfluence, CgInfluence, DirectInfluence, EkfacInfluence, LissaInfluence
    n = len(y)
    if method == "ekfac":  # pyDVL's EK-FAC hooks multiply by float32 eigenvectors (float64 fails): float32
        model, X, Xt = model.float(), X.float(), Xt.float()
    loader = DataLoader(TensorDataset(X, y), batch_size=BATCH)
    loss = F.cross_entropy
    make = {
        "direct": lambda: DirectInfluence(model, loss, regularization=L2),
        "cg": lambda: CgInfluence(model, loss, regularization=L2, rtol=1e-6, atol=1e-10, maxiter=1000,
                                  solve_simultaneously=True, warn_on_max_iteration=True),
        "lissa": lambda: LissaInfluence(model, loss, regularization=L2, maxiter=1000, rtol=1e-4),
        "arnoldi": lambda: ArnoldiInfluence(model, loss, regularization=L2, rank=50),
        "ekfac": lambda: EkfacInfluence(model, update_diagonal=True, hessian_regularization=L2),
    }
    t0 = time.perf_counter()
    infl = make[method]().fit(loader)
    t1 = time.perf_counter()
    out = {}
    if task in ("self", "loo"):   # no self-influence API: factors of a chunk, scores of the chunk, diagonal
        vals = []
        for s in range(0, len(idx), BATCH):
            j = idx[s:s + BATCH]
            f = infl.influence_factors(X[j], y[j])
            vals.append(torch.diagonal(infl.influences_from_factors(f, X[j], y[j])).detach())
        out["self"] = torch.cat(vals).double().numpy() / n
    t2 = time.perf_counter()
    if task in ("test", "loo"):
        f = infl.influence_factors(Xt, yt)
        cols = [infl.influences_from_factors(f, X[idx[s:s + BATCH]], y[idx[s:s + BATCH]]).detach()
                for s in range(0, len(idx), BATCH)]
        out["test"] = torch.cat(cols, dim=1).double().numpy() / n
    t3 = time.perf_counter()
    return out, {"fit_s": t1 - t0, "self_s": t2 - t1, "test_s": t3 - t2}


# --------------------------------------------------------------------------------------------- Kronfluence
def run_kronfluence(method, model, X, y, Xt, yt, task, idx):
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task

    class CE(Task):
        def compute_train_loss(self, batch, model, sample=False):
            x, t = batch
            logits = model(x)
            if sample:  # labels drawn from the model's predictive distribution (true Fisher)
                with torch.no_grad():
                    t = torch.multinomial(torch.softmax(logits.detach(), -1), 1).flatten()
            return F.cross_entropy(logits, t, reduction="sum")

        def compute_measurement(self, batch, model):
            x, t = batch
            return F.cross_entropy(model(x), t, reduction="sum")

    n = len(y)
    task_ = CE()
    mdl = prepare_model(copy.deepcopy(model), task_)  # Kronfluence mutates the model: a copy
    tmp = tempfile.mkdtemp(prefix="kron-")
    f64 = torch.float64
    fargs = FactorArguments(strategy=method, activation_covariance_dtype=f64, gradient_covariance_dtype=f64,
                            per_sample_gradient_dtype=f64, lambda_dtype=f64, eigendecomposition_dtype=f64)
    sargs = ScoreArguments(damping_factor=L2, per_sample_gradient_dtype=f64, precondition_dtype=f64,
                           score_dtype=f64)
    train_ds = TensorDataset(X, y)
    t0 = time.perf_counter()
    an = Analyzer("bench", mdl, task_, cpu=True, output_dir=tmp, disable_tqdm=True, log_level=40)
    an.fit_all_factors("f", train_ds, per_device_batch_size=BATCH, factor_args=fargs, overwrite_output_dir=True)
    t1 = time.perf_counter()
    out = {}
    train_indices = None if len(idx) == n else idx.tolist()
    if task in ("self", "loo"):
        an.compute_self_scores("s", "f", train_dataset=train_ds, per_device_train_batch_size=BATCH,
                               train_indices=train_indices, score_args=sargs, overwrite_output_dir=True)
        out["self"] = an.load_self_scores("s")["all_modules"].double().numpy() / n   # not divided by n: divide
    t2 = time.perf_counter()
    if task in ("test", "loo"):
        an.compute_pairwise_scores("p", "f", query_dataset=TensorDataset(Xt, yt), train_dataset=train_ds,
                                   per_device_query_batch_size=len(yt), per_device_train_batch_size=BATCH,
                                   train_indices=train_indices, score_args=sargs, overwrite_output_dir=True)
        out["test"] = an.load_pairwise_scores("p")["all_modules"].double().numpy() / n
    t3 = time.perf_counter()
    return out, {"fit_s": t1 - t0, "self_s": t2 - t1, "test_s": t3 - t2}


# --------------------------------------------------------------------------------------------- dattri
def run_dattri(method, model, X, y, Xt, yt, task, idx):
    from dattri.algorithm.influence_function import (
        IFAttributorArnoldi,
        IFAttributorCG,
        IFAttributorEKFAC,
        IFAttributorExplicit,
        IFAttributorLiSSA,
    )
    from dattri.task import AttributionTask

    def loss_func(params, data):
        x, t = data
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)), t.long())

    n = len(y)
    if method in ("lissa", "arnoldi"):  # these cast to float32 inside dattri (float64 fails): run in float32
        model, X, Xt = model.float(), X.float(), Xt.float()
    atask = AttributionTask(loss_func=loss_func, model=model, checkpoints=model.state_dict())
    make = {
        "explicit": lambda: IFAttributorExplicit(atask, regularization=L2),
        "cg": lambda: IFAttributorCG(atask, regularization=L2, max_iter=100, tol=1e-7),
        "lissa": lambda: IFAttributorLiSSA(atask, damping=L2, batch_size=BATCH, recursion_depth=1000),
        "arnoldi": lambda: IFAttributorArnoldi(atask, regularization=L2, proj_dim=50, max_iter=110),
        "ekfac": lambda: IFAttributorEKFAC(atask, damping=L2),
    }
    ds = TensorDataset(X, y)
    # dattri sums one inverse-Hessian solve per batch of the cached loader: one batch of all records gives
    # the Hessian of the mean loss (EK-FAC averages its statistics over batches, so it gets BATCH).
    full = DataLoader(ds, batch_size=BATCH if method == "ekfac" else n)
    t0 = time.perf_counter()
    attr = make[method]()
    attr.cache(full)
    t1 = time.perf_counter()
    out = {}
    sub = DataLoader(Subset(ds, idx.tolist()), batch_size=BATCH)
    if task in ("self", "loo"):
        out["self"] = attr.self_attribute(sub).detach().double().numpy() / n
    t2 = time.perf_counter()
    if task in ("test", "loo"):
        S = attr.attribute(sub, DataLoader(TensorDataset(Xt, yt), batch_size=len(yt)))  # (train, test)
        out["test"] = S.detach().double().numpy().T / n
    t3 = time.perf_counter()
    return out, {"fit_s": t1 - t0, "self_s": t2 - t1, "test_s": t3 - t2}


# --------------------------------------------------------------------------------------------- captum
def run_captum(method, model, X, y, Xt, yt, task, idx):
    from captum.influence import TracInCP
    from captum.influence._core.arnoldi_influence_function import ArnoldiInfluenceFunction
    n = len(y)
    tmp = Path(tempfile.mkdtemp(prefix="captum-")) / "ckpt.pt"
    torch.save(model.state_dict(), tmp)
    ds = TensorDataset(X, y)
    sub_ds = Subset(ds, idx.tolist()) if len(idx) < n else ds
    t0 = time.perf_counter()
    if method == "tracincp":
        obj = TracInCP(model, sub_ds, checkpoints=[str(tmp)], loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"),
                       batch_size=BATCH, sample_wise_grads_per_batch=True)
    else:
        obj = ArnoldiInfluenceFunction(model, sub_ds, checkpoint=str(tmp), hessian_dataset=ds,
                                       loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"),
                                       batch_size=BATCH, projection_dim=50, arnoldi_dim=110, hessian_reg=L2 * n,
                                       sample_wise_grads_per_batch=True)
    # captum's Arnoldi uses the Hessian of the summed loss (so hessian_reg = n·l2 above and its scores are
    # already (1/n)·gᵀH⁻¹g); TracInCP is a plain gradient dot product (learning rate 1): divided by n
    scale = 1.0 if method == "arnoldi" else n
    t1 = time.perf_counter()
    out = {}
    if task in ("self", "loo"):
        out["self"] = obj.self_influence(show_progress=False).detach().double().numpy() / scale
    t2 = time.perf_counter()
    if task in ("test", "loo"):
        out["test"] = obj.influence((Xt, yt), show_progress=False).detach().double().numpy() / scale
    t3 = time.perf_counter()
    return out, {"fit_s": t1 - t0, "self_s": t2 - t1, "test_s": t3 - t2}


def run_epoch(model, X, y):
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for s in range(0, len(y), BATCH):
            model.zero_grad()
            F.cross_entropy(model(X[s:s + BATCH]), y[s:s + BATCH]).backward()
        times.append(time.perf_counter() - t0)
    return {}, {"epoch_s": float(np.median(times)), "epoch_all_s": times}


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser()
    for a in ("lib", "method", "model", "task"):
        ap.add_argument(a)
    ap.add_argument("work", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-warmup", action="store_true")
    a = ap.parse_args()
    model, X, y, Xt, yt, chosen = load(a.work, a.model, a.task)
    if a.task == "epoch":
        out, t = run_epoch(model, X, y)
    else:
        idx = targets(a.task, len(y), a.limit, chosen)
        fn = {"auditkit": run_auditkit, "pydvl": run_pydvl, "kronfluence": run_kronfluence,
              "dattri": run_dattri, "captum": run_captum}[a.lib]
        epoch = {}
        if a.task == "self":      # one epoch in this very process, just before: the ratio's denominator
            _, epoch = run_epoch(model, X, y)
        if a.task in ("self", "test") and not a.no_warmup:
            # warm-up on the first WARMUP records, not timed: every library's one-off costs (lazy imports,
            # first kernel dispatches) stay out of the timed run, as the epoch's median of three leaves them out
            # (a subset's Hessian may be indefinite where the full one is not: a failed warm-up is ignored)
            w = torch.arange(min(WARMUP, len(y)))
            try:
                fn(a.method, copy.deepcopy(model), X[w], y[w], Xt, yt, a.task, w)
            except Exception:  # noqa: BLE001
                pass
        out, t = fn(a.method, model, X, y, Xt, yt, a.task, idx)
        t["n_scored"] = int(len(idx))
        if epoch:
            t["epoch_same_process_s"] = epoch["epoch_s"]
    np.savez(a.out, **out, **{f"t_{k}": np.asarray(v) for k, v in t.items()})


if __name__ == "__main__":
    main()
