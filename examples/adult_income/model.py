"""The audited model of the Adult-income example, and the script that trains it.

``build(n_features, width)`` is the builder named in ``audit.yaml``: a one-hidden-layer MLP (tanh) with two
logits (income <=50K, >50K), in float64. ``python examples/adult_income/model.py`` re-creates the committed
files of ``model/`` deterministically:

- ``model/train.csv``: the 32,561 rows of ``data/adult.data`` (the census training file);
- ``model/test.csv`` and ``model/holdout.csv``: ``data/adult.test`` (16,281 rows) split in two at random
  with a fixed seed (8,141 test rows for the fairness audit, 8,140 held-out non-members for the privacy
  audit; neither is ever trained on);
- ``model/weights.pt``: the state dict, trained on ``train.csv`` featurized exactly as the audit will, to a
  minimum of mean cross-entropy + (l2/2)‖θ‖² (full batch).

The tables keep the columns the audit uses, with a record ``id`` (the record's number in its source file:
1-32,561 for ``adult.data``, 100,001-116,281 for ``adult.test``, header comment not counted), leading spaces
stripped, ``?`` written as a missing value, and the trailing ``.`` of the test labels removed. ``fnlwgt``
(a census sampling weight, not an attribute of the person) and ``education``
(the same information as ``education_num``) are left out.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
L2 = 1e-3     # must equal model.l2 in audit.yaml
WIDTH = 8     # must equal model.builder_args.width in audit.yaml
SEED = 0
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
           "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
           "income"]
KEEP = ["id", "age", "workclass", "education_num", "marital_status", "occupation", "relationship", "race", "sex",
        "capital_gain", "capital_loss", "hours_per_week", "native_country", "income"]


def build(n_features: int, width: int = WIDTH) -> torch.nn.Module:
    """MLP: Linear(n_features, width) → tanh → Linear(width, 2), float64."""
    return torch.nn.Sequential(torch.nn.Linear(n_features, width), torch.nn.Tanh(),
                               torch.nn.Linear(width, 2)).double()


def read(name: str, offset: int) -> pd.DataFrame:
    """One census file as a table: ``?`` → missing, labels without the trailing '.'."""
    path = HERE / "data" / name
    skip = 1 if name == "adult.test" else 0  # adult.test starts with a comment line
    df = pd.read_csv(path, header=None, names=COLUMNS, skiprows=skip, skipinitialspace=True, na_values="?")
    df = df.dropna(how="all")  # the files end with a blank line
    df["income"] = df["income"].str.rstrip(".")
    df.insert(0, "id", offset + np.arange(1, len(df) + 1))
    return df[KEEP]


def tables() -> dict[str, pd.DataFrame]:
    """train (adult.data), and adult.test split into test and holdout with a fixed seed."""
    train, rest = read("adult.data", 0), read("adult.test", 100_000)
    order = np.random.default_rng(SEED).permutation(len(rest))
    half = (len(rest) + 1) // 2
    test = rest.iloc[np.sort(order[:half])].reset_index(drop=True)
    holdout = rest.iloc[np.sort(order[half:])].reset_index(drop=True)
    return {"train": train, "test": test, "holdout": holdout}


def main() -> None:
    sys.path.insert(0, str(HERE.parents[1]))
    import auditkit
    from auditkit.config import load_config
    from auditkit.inputs import load_data

    torch.set_num_threads(1)
    (HERE / "model").mkdir(exist_ok=True)
    for name, frame in tables().items():
        frame.to_csv(HERE / "model" / f"{name}.csv", index=False)
    config = load_config(HERE / "audit.yaml")
    train = load_data(config).splits["train"]
    X, y = torch.tensor(train.X), torch.tensor(train.y)
    torch.manual_seed(SEED)
    model = build(X.shape[1])
    info = auditkit.fit_model(model, X, y, loss="cross_entropy", l2=L2, max_iter=5000, newton_max_params=0)
    if not info["converged"]:
        raise SystemExit(f"training did not converge: {info}")
    torch.save(model.state_dict(), HERE / "model" / "weights.pt")
    print(f"trained on {len(y)} people, {X.shape[1]} features, {sum(p.numel() for p in model.parameters())} "
          f"parameters ({info['iterations']} L-BFGS iterations, gradient {info['grad_norm']:.1e}): "
          f"{HERE / 'model' / 'weights.pt'}")


if __name__ == "__main__":
    main()
