"""The audited model of the German-credit example: a fitted scikit-learn LogisticRegression, converted to torch.

The bank's model is ``sklearn.linear_model.LogisticRegression(C=1.0)`` (scikit-learn's default C), fitted with
lbfgs on the audit's own training split. scikit-learn minimises ``C·Σ_i ℓ_i + ½‖w‖²``, the intercept
unpenalised, which is ``C·n·(mean ℓ + ½·(1/(C·n))·‖w‖²)``: the objective of the influence contract with the
per-parameter L2 ``{weight: 1/(C·n)}`` (``auditkit.models.from_sklearn`` computes it; ``audit.yaml``'s
``model.l2`` must equal it, and this script checks that it does).

``python examples/german_credit/model.py`` re-creates the two committed files of ``model/`` deterministically:

- ``model/applicants.csv``: the UCI table decoded into words (``examples/datasets.py: load_german_credit``), with
  ``credit`` = "good" / "bad", ``sex`` derived from ``status_sex`` (see ``data/SOURCE.md`` for why it is a
  noisy proxy) and an ``id`` per applicant;
- ``model/weights.pt``: the state dict of the converted model (``torch.save``; tensors only, no pickled
  estimator), which ``build(n_features)`` below matches.

``retrain(model, X, y)`` is the ``model.train_fn`` of ``audit.yaml``: it refits the scikit-learn estimator itself
(warm start from the model's coefficients), so auditkit's checks by actual retraining retrain the bank's model
the way the bank trains it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
C = 1.0          # the estimator's regularisation (scikit-learn's default)
TOL = 1e-10      # tight, so that the fitted coefficients are at the minimum influence functions assume


def build(n_features: int) -> torch.nn.Module:
    """The converted logistic regression: one logit, P(good credit) = σ(x·w + b); parameters ``weight``, ``bias``."""
    return torch.nn.Linear(n_features, 1).double()


def estimator(**kw):
    """The bank's scikit-learn estimator (unfitted)."""
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=C, tol=TOL, max_iter=10_000, **kw)


def retrain(model: torch.nn.Module, X: np.ndarray, y: np.ndarray) -> torch.nn.Module:
    """Refit the scikit-learn estimator on (X, y), starting from ``model``'s coefficients; return it converted."""
    from auditkit.models import from_sklearn

    est = estimator(warm_start=True)
    est.coef_ = model.weight.detach().double().numpy().copy()
    est.intercept_ = model.bias.detach().double().numpy().copy()
    est.fit(X, y)
    return from_sklearn(est, n_samples=len(y)).module


def applicants():
    """One row per applicant: id, the 20 attributes in words, sex (derived), credit (good / bad)."""
    from examples.datasets import load_german_credit

    df = load_german_credit()
    df["credit"] = np.where(df.pop("target") == 1, "good", "bad")
    return df


def main() -> None:
    sys.path.insert(0, str(HERE.parents[1]))
    from auditkit.config import load_config
    from auditkit.inputs import load_data
    from auditkit.models import from_sklearn

    torch.set_num_threads(1)
    (HERE / "model").mkdir(exist_ok=True)
    applicants().to_csv(HERE / "model" / "applicants.csv", index=False)
    config = load_config(HERE / "audit.yaml")
    train = load_data(config).splits["train"]
    est = estimator().fit(train.X, train.y)
    sk = from_sklearn(est, n_samples=len(train.y))
    configured = config.model.l2
    if not isinstance(configured, dict) or configured.keys() != sk.l2.keys() or any(
            abs(configured[k] - v) > 1e-9 * v for k, v in sk.l2.items()):
        raise SystemExit(f"audit.yaml model.l2 is {configured!r} but the estimator's objective needs "
                         f"{sk.l2!r}: put that mapping in audit.yaml")
    torch.save(sk.module.state_dict(), HERE / "model" / "weights.pt")
    print(f"fitted LogisticRegression(C={C}) on {len(train.y)} applicants, {train.X.shape[1]} features "
          f"({est.n_iter_[0]} lbfgs iterations); l2 = {sk.l2}: {HERE / 'model' / 'weights.pt'}")


if __name__ == "__main__":
    main()
