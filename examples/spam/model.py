"""The audited model of the spam example, its featurizer, and the script that trains it.

``build(n_features)`` is the builder named in ``audit.yaml``: a logistic regression (two logits: legitimate
``n``, spam ``y``) in float64. ``featurizer()`` is ``data.featurizer`` in ``audit.yaml``: every count and
percentage of spam7 is heavily skewed (most emails have none of a word, a few have a lot), so each is
taken as ``log(1 + x)`` and then standardised with the training split's mean and standard deviation.

``python examples/spam/model.py`` re-creates ``model/weights.pt`` deterministically: the state dict, trained
on the audit's own training split (the configuration's seeded split of ``data/spam7.csv``, featurized
exactly as the audit will) to a minimum of mean cross-entropy + (l2/2)‖θ‖².
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
L2 = 1e-3  # must equal model.l2 in audit.yaml


def build(n_features: int) -> torch.nn.Module:
    """Logistic regression with two logits (legitimate, spam)."""
    return torch.nn.Linear(n_features, 2).double()


class LogStandardiser:
    """``(log(1 + x) - mean) / std`` per column, mean and std (ddof=1) from the training split."""

    def fit(self, frame: pd.DataFrame) -> LogStandardiser:
        logged = np.log1p(frame.to_numpy(np.float64))
        self.columns_ = [f"log1p({c})" for c in frame.columns]
        self.mean_, self.std_ = logged.mean(axis=0), logged.std(axis=0, ddof=1)
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        logged = np.log1p(frame.to_numpy(np.float64))
        return pd.DataFrame((logged - self.mean_) / self.std_, columns=self.columns_, index=frame.index)


def featurizer() -> LogStandardiser:
    return LogStandardiser()


def main() -> None:
    sys.path.insert(0, str(HERE.parents[1]))
    import auditkit
    from auditkit.config import load_config
    from auditkit.inputs import load_data

    torch.set_num_threads(1)
    (HERE / "model").mkdir(exist_ok=True)
    config = load_config(HERE / "audit.yaml")
    splits = load_data(config).splits
    train = splits["train"]
    X, y = torch.tensor(train.X), torch.tensor(train.y)
    model = build(X.shape[1])
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    info = auditkit.fit_model(model, X, y, loss="cross_entropy", l2=L2)
    if not info["converged"]:
        raise SystemExit(f"training did not converge: {info}")
    torch.save(model.state_dict(), HERE / "model" / "weights.pt")
    test = splits["test"]
    with torch.no_grad():
        accuracy = float((model(torch.tensor(test.X)).argmax(1).numpy() == test.y).mean())
        flagged = model(torch.tensor(test.X)).argmax(1).numpy() != test.favourable_index
    legit = test.y == test.favourable_index
    wrongly = sorted(test.ids[flagged & legit], key=int)
    print(f"trained on {len(y)} emails, {X.shape[1]} features; test accuracy {accuracy:.4f}: "
          f"{HERE / 'model' / 'weights.pt'}")
    print(f"{len(wrongly)} of {int(legit.sum())} legitimate test emails flagged as spam; the first 5 ids (for "
          f"audits.fairness.explain.records): {[str(i) for i in wrongly[:5]]}")


if __name__ == "__main__":
    main()
