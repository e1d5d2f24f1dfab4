"""From a validated configuration to the objects an audit needs: data splits, the model, a training function.

Every problem found here is an :class:`InputError` naming the configuration key to fix.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .audits.base import TrainFn, warm_start_trainer
from .config import AuditConfig
from .data import AuditData, DataSpec, TabularFeaturizer, age_bands, load_table, prepare_splits
from .errors import InputError
from .models import build_model, import_object

DTYPES = {"float64": torch.float64, "float32": torch.float32}
ROLES = {"train": "training records (members)", "test": "fairness and accuracy evaluation",
         "holdout": "non-members (never trained on) for membership inference and flag calibration"}


@dataclass
class LoadedData:
    splits: dict[str, AuditData]
    sources: dict[str, str]        # split → file name (never a full path)
    hashes: dict[str, str]         # split → SHA-256 of the split's content


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def frame_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's content (column names and every value, row order included)."""
    h = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _frames(config: AuditConfig) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    data = config.data
    if data.table is not None:
        path = config.path(data.table)
        table = load_table(path, id_column=data.id_column)
        order = np.random.default_rng(data.split.seed).permutation(len(table))
        n_test, n_hold = round(data.split.test * len(table)), round(data.split.holdout * len(table))
        parts = {"test": order[:n_test], "holdout": order[n_test:n_test + n_hold], "train": order[n_test + n_hold:]}
        frames = {k: table.iloc[np.sort(v)].reset_index(drop=True) for k, v in parts.items() if len(v)}
        return frames, {k: f"{path.name} ({k} part, split seed {data.split.seed})" for k in frames}
    frames, sources = {}, {}
    for name in ("train", "test", "holdout"):
        value = getattr(data, name)
        if value is not None:
            path = config.path(value)
            frames[name] = load_table(path, id_column=data.id_column)
            sources[name] = path.name
    return frames, sources


def load_data(config: AuditConfig) -> LoadedData:
    """Read, derive sensitive bands, split if asked, featurize (fitted on train) and validate."""
    data = config.data
    frames, sources = _frames(config)
    for name, frame in frames.items():
        for s in data.sensitive:
            if s.from_column is not None:
                if s.from_column not in frame.columns:
                    raise InputError(f"data.sensitive: column {s.from_column!r} (to cut into bands for {s.column!r}) "
                                     f"is not in the {name} table: fix 'from'")
                frame[s.column] = age_bands(frame[s.from_column], edges=s.bands)
    hashes = {name: frame_sha256(frame) for name, frame in frames.items()}
    featurizer = None
    if data.featurizer is not None:
        make = import_object(data.featurizer, "data.featurizer")
        if not callable(make):
            raise InputError(f"data.featurizer: {data.featurizer!r} is not callable: name a function or class "
                             "that returns an object with fit(frame) and transform(frame)")
        featurizer = make()
    elif data.categorical:
        featurizer = TabularFeaturizer(categorical=data.categorical)
    derived = {s.column for s in data.sensitive if s.from_column is not None}
    features = data.features
    if features is None:
        first = next(iter(frames.values()))
        features = [c for c in first.columns if c not in {data.target, data.id_column} | derived]
    spec = DataSpec(target=data.target, sensitive=tuple(s.column for s in data.sensitive), id_column=data.id_column,
                    features=tuple(features), favourable=data.favourable)
    splits = prepare_splits(frames, spec, featurizer=featurizer)
    for name, split in splits.items():
        if split.n == 0:
            raise InputError(f"data: the {name} split has no records: give a table with at least one row")
    return LoadedData(splits, sources, hashes)


def load_model(config: AuditConfig, splits: dict[str, AuditData]) -> nn.Module:
    """The model from its builder and weights, checked against the featurized data and the loss."""
    m = config.model
    weights = config.path(m.weights) if m.weights else None
    model = build_model(m.builder, weights, kwargs=m.builder_args, dtype=DTYPES[m.dtype])
    train = splits["train"]
    x = torch.tensor(train.X[:2], dtype=DTYPES[m.dtype])
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # noqa: BLE001 - any failure means the data does not fit the model
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"model: the model cannot take the featurized data ({train.X.shape[1]} features per "
                         f"record): {first}. Check data.features/categorical/featurizer against the model") from None
    classes = len(train.classes)
    expected = (2, classes) if m.loss == "cross_entropy" else None
    if expected and tuple(out.shape) != expected:
        raise InputError(f"model: outputs of shape {tuple(out.shape[1:])} per record, but the target has {classes} "
                         f"classes: the model needs {classes} outputs for loss 'cross_entropy'")
    if m.loss == "bce" and (classes != 2 or out.reshape(2, -1).shape[1] != 1):
        raise InputError("model: loss 'bce' needs a binary target and one output per record")
    return model


def training_function(config: AuditConfig) -> TrainFn | None:
    """The configured training function (``warm_start`` or user code), or None."""
    m = config.model
    if m.train_fn is None:
        return None
    if m.train_fn == "warm_start":
        return warm_start_trainer(loss=m.loss, l2=m.l2)
    fn = import_object(m.train_fn, "model.train_fn")
    if not callable(fn):
        raise InputError(f"model.train_fn: {m.train_fn!r} is not callable: name a function (model, X, y) -> model")
    return fn
