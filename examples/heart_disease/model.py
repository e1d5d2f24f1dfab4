"""The audited model of the heart-disease example, and the script that trains it.

``build(n_features)`` is the builder named in ``audit.yaml``: a logistic regression (two logits) in float64.
``python examples/heart_disease/model.py`` re-creates the two committed files deterministically:

- ``model/patients.csv``: the UCI table (``data/heart_disease_uci.csv``) with ``disease`` = "yes" when
  ``num`` > 0 and 0 in ``chol``/``trestbps`` read as "not measured" (how some hospitals recorded it);
- ``model/weights.pt``: the state dict, trained on the audit's own training split (the configuration's
  seeded split, featurized exactly as the audit will) to a minimum of mean cross-entropy + (l2/2)‖θ‖².
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
L2 = 0.01  # must equal model.l2 in audit.yaml


def build(n_features: int) -> torch.nn.Module:
    """Logistic regression with two logits (no disease, disease)."""
    return torch.nn.Linear(n_features, 2).double()


def patients() -> pd.DataFrame:
    df = pd.read_csv(HERE / "data" / "heart_disease_uci.csv")
    for col in ("chol", "trestbps"):
        df.loc[df[col] == 0, col] = np.nan
    df["disease"] = np.where(df.pop("num") > 0, "yes", "no")
    return df


def main() -> None:
    sys.path.insert(0, str(HERE.parents[1]))
    import auditkit
    from auditkit.config import load_config
    from auditkit.inputs import load_data

    torch.set_num_threads(1)
    (HERE / "model").mkdir(exist_ok=True)
    patients().to_csv(HERE / "model" / "patients.csv", index=False)
    config = load_config(HERE / "audit.yaml")
    train = load_data(config).splits["train"]
    X, y = torch.tensor(train.X), torch.tensor(train.y)
    model = build(X.shape[1])
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    info = auditkit.fit_model(model, X, y, loss="cross_entropy", l2=L2)
    if not info["converged"]:
        raise SystemExit(f"training did not converge: {info}")
    torch.save(model.state_dict(), HERE / "model" / "weights.pt")
    print(f"trained on {len(y)} patients, {X.shape[1]} features: {HERE / 'model' / 'weights.pt'}")


if __name__ == "__main__":
    main()
