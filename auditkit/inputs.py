"""From a validated configuration to the objects an audit needs: data splits, the model, a training function.

Every problem found here is an :class:`InputError` naming the configuration key to fix.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .audits.base import BuiltTrainer, TrainFn, warm_start_trainer
from .config import AuditConfig, DataConfig, ModelConfig
from .data import (
    AuditData,
    DataSpec,
    PassThrough,
    TabularFeaturizer,
    age_bands,
    load_table,
    needs_encoding,
    prepare_splits,
)
from .errors import InputError
from .influence.dtypes import DTYPES
from .influence.stationarity import STATIONARITY_THRESHOLD, stationarity
from .models import build_model, import_object
from .models.loading import cast_finite
from .seeds import derived_seed

#: the fewest records a part of a split table may hold (one record cannot carry two classes or a group gap)
MIN_SPLIT_RECORDS = 2
#: the source named in the run document (and the report) for a table given as a DataFrame
IN_MEMORY = "in-memory DataFrame"
TABLE_NAMES = ("train", "test", "holdout", "table")
ROLES = {"train": "training records (members)", "test": "fairness and accuracy evaluation",
         "holdout": "non-members (never trained on) for membership inference and flag calibration"}


@dataclass
class LoadedData:
    splits: dict[str, AuditData]
    sources: dict[str, str]        # split → file name (never a full path)
    hashes: dict[str, str]         # split → SHA-256 of the split's content
    featurizer: str = "tabular"    # which featurizer made the model inputs, in words (for the report)


def frame_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's content (column names and every value, row order included)."""
    h = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def in_memory_tables(config: AuditConfig) -> dict[str, pd.DataFrame] | None:
    """The tables given to ``auditkit.audit(data=...)`` (checked: DataFrames, known split names, a complete set),
    or None when the tables come from the configuration's files."""
    return checked_tables(config.inputs.tables if config.inputs is not None else None, config.data)


def checked_tables(tables, data: DataConfig) -> dict[str, pd.DataFrame] | None:
    """``tables`` (the DataFrames given in place of files, or None) checked against ``data``: DataFrames, known
    split names, a complete set."""
    if tables is None:
        return None
    usage = ("give a dict of split name to pandas DataFrame: {'train': ..., 'test': ...} (optionally 'holdout'), "
             "or {'table': ...} split by the configuration's data.split")
    if not isinstance(tables, Mapping):
        raise InputError(f"data: got a {type(tables).__name__}: {usage}")
    for name, frame in tables.items():
        if name not in TABLE_NAMES:
            raise InputError(f"data: unknown split {name!r}: {usage}")
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"data[{name!r}]: got a {type(frame).__name__}, not a pandas DataFrame: {usage}")
    if "table" in tables and len(tables) > 1:
        raise InputError(f"data: give either 'table' or 'train'/'test'/'holdout', not both (got {list(tables)}): "
                         f"{usage}")
    if "table" in tables and data.split is None:
        raise InputError("data: a 'table' DataFrame needs data.split in the configuration (fractions of test and "
                         "holdout records, and a seed): add it, or give 'train' and 'test' DataFrames")
    if "table" not in tables and not {"train", "test"} <= set(tables):
        raise InputError(f"data: the 'train' and 'test' DataFrames are both needed (got {list(tables)}): {usage}")
    return dict(tables)


def has_holdout(data: DataConfig, tables: Mapping | None) -> bool:
    """Whether the audit has non-members: a holdout table (file or DataFrame), or a split with holdout > 0."""
    named = ("holdout" in tables) if tables is not None else data.holdout is not None
    split = (tables is None or "table" in tables) and data.split is not None and data.split.holdout > 0
    return named or split


def split_seed(data: DataConfig, run_seed: int) -> int | None:
    """The seed of the split of one table: ``data.split.seed`` when set, else derived from the run's seed
    (:mod:`auditkit.seeds`); None without a split."""
    if data.split is None:
        return None
    return data.split.seed if data.split.seed is not None else derived_seed(run_seed, "split")


def _frames(data: DataConfig, tables: Mapping | None, path_of: Callable[[str], Path],
            seed: int | None) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The tables as read (files or DataFrames; one table split with ``seed``) and their sources in words."""
    if (tables is None and data.table is not None) or (tables is not None and "table" in tables):
        path = path_of(data.table) if tables is None else None
        table = load_table(path if tables is None else tables["table"], id_column=data.id_column)
        where, name = ("data.table", repr(str(path))) if tables is None else ("data['table']", "the DataFrame")
        if len(table) == 0:
            raise InputError(f"{where}: {name} has no rows: give a table with at least one record per split")
        _unique_ids(table, data.id_column, where)
        order = np.random.default_rng(seed).permutation(len(table))
        n_test, n_hold = round(data.split.test * len(table)), round(data.split.holdout * len(table))
        parts = {"test": order[:n_test], "holdout": order[n_test:n_test + n_hold], "train": order[n_test + n_hold:]}
        wanted = {"train": True, "test": data.split.test > 0, "holdout": data.split.holdout > 0}
        for name, rows in parts.items():
            if wanted[name] and len(rows) < MIN_SPLIT_RECORDS:
                raise InputError(f"data.split: the {name} part has {len(rows)} record(s) of the table's {len(table)}: "
                                 f"change data.split.test/holdout so that every part has at least "
                                 f"{MIN_SPLIT_RECORDS} records")
        frames = {k: table.iloc[np.sort(v)].copy() for k, v in parts.items() if len(v)}   # index: the table's rows
        source = path.name if tables is None else IN_MEMORY
        return frames, {k: f"{source} ({k} part, split seed {seed})" for k in frames}
    frames, sources = {}, {}
    if tables is not None:
        for name in ("train", "test", "holdout"):
            if name in tables:
                frames[name], sources[name] = load_table(tables[name], id_column=data.id_column), IN_MEMORY
        return frames, sources
    for name in ("train", "test", "holdout"):
        value = getattr(data, name)
        if value is not None:
            path = path_of(value)
            frames[name] = load_table(path, id_column=data.id_column)
            sources[name] = path.name
    return frames, sources


def _unique_ids(table: pd.DataFrame, id_column: str | None, where: str) -> None:
    """Refuse a table whose id column repeats a value (positions are named, never the ids themselves)."""
    if id_column is None or id_column not in table.columns:
        return
    dup = np.flatnonzero(table[id_column].dropna().astype(str).duplicated().to_numpy())
    if dup.size:
        rows = ", ".join(str(i) for i in dup[:3]) + (", ..." if dup.size > 3 else "")
        raise InputError(f"{where}: {dup.size} duplicate values in id column {id_column!r} (0-based rows {rows}): "
                         "record ids must be unique; remove the repeated records or fix their ids")


def _disjoint(splits: dict[str, AuditData]) -> None:
    """Refuse records that are both members (train) and non-members (holdout): membership would be undefined."""
    if "holdout" not in splits:
        return
    both = len(set(splits["train"].ids) & set(splits["holdout"].ids))
    if both:
        raise InputError(f"data: {both} record id(s) are in both the train and the holdout split: non-members must "
                         "never have been trained on; remove them from data.holdout")


def load_data(config: AuditConfig) -> LoadedData:
    """:func:`read_data` of the configuration's ``data`` section (and the tables given in memory, if any)."""
    return read_data(config.data, tables=in_memory_tables(config), path_of=config.path, base_dir=config.base_dir,
                     seed=split_seed(config.data, config.seed))


def read_data(data: DataConfig, *, tables: Mapping | None, path_of: Callable[[str], Path], base_dir: Path,
              seed: int | None) -> LoadedData:
    """Read (``tables`` given in memory, else the files named in ``data``, relative paths resolved by ``path_of``),
    derive sensitive bands, split if asked (with ``seed``), featurize (fitted on train) and validate."""
    frames, sources = _frames(data, tables, path_of, seed)
    for name, frame in frames.items():
        for s in data.sensitive:
            if s.from_column is not None:
                if s.from_column not in frame.columns:
                    raise InputError(f"data.sensitive: column {s.from_column!r} (to cut into bands for {s.column!r}) "
                                     f"is not in the {name} table: fix 'from'")
                frame[s.column] = age_bands(frame[s.from_column], edges=s.bands)
    hashes = {name: frame_sha256(frame) for name, frame in frames.items()}
    derived = {s.column for s in data.sensitive if s.from_column is not None}
    features = data.features
    if features is None:
        first = next(iter(frames.values()))
        features = [c for c in first.columns if c not in {data.target, data.id_column} | derived]
    spec = DataSpec(target=data.target, sensitive=tuple(s.column for s in data.sensitive), id_column=data.id_column,
                    features=tuple(features), favourable=data.favourable)
    missing = [c for c in features if c not in frames["train"].columns]
    featurizer, described = (None, "") if missing else choose_featurizer(data, frames["train"][features],
                                                                         base_dir=base_dir)
    # (missing columns: refused in prepare_splits, by name)
    splits = prepare_splits(frames, spec, featurizer=featurizer, unseen_levels="refuse")
    for name, split in splits.items():
        if split.n == 0:
            raise InputError(f"data: the {name} split has no records: give a table with at least one row")
    _disjoint(splits)
    return LoadedData(splits, sources, hashes, described)


def choose_featurizer(data: DataConfig, train: pd.DataFrame, *, base_dir: Path) -> tuple[object, str]:
    """The featurizer ``data.featurizer`` asks for, and what it is in words: ``none``/``passthrough`` (the columns
    as given), ``tabular`` (:class:`TabularFeaturizer`), code named ``package.module:function``, or, unset, tabular
    when the columns need it (``data.categorical`` given, or :func:`auditkit.data.needs_encoding`), else none."""
    choice = data.featurizer
    if choice in ("none", "passthrough"):
        if data.categorical:
            raise InputError(f"data.featurizer {choice!r} takes the columns as given, but data.categorical lists "
                             f"{data.categorical[0]!r} to encode: remove data.categorical, or set data.featurizer: "
                             "tabular")
        return PassThrough(), f"none (data.featurizer: {choice}): the feature columns as given"
    if choice == "tabular":
        return TabularFeaturizer(categorical=data.categorical), ("tabular (data.featurizer: tabular): numbers "
                                                                 "standardised, categories one-hot")
    if choice is not None:
        make = import_object(choice, "data.featurizer", base_dir=base_dir)
        fix = "name a function or class that returns an object with fit(frame) and transform(frame)"
        if not callable(make):
            raise InputError(f"data.featurizer: {choice!r} is not callable: {fix}")
        try:
            return make(), f"{choice} (data.featurizer)"
        except Exception as exc:  # noqa: BLE001 - user code: any failure is a problem of the configuration
            detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            raise InputError(f"data.featurizer: calling {choice!r} failed ({type(exc).__name__}: {detail}): "
                             f"{fix}") from None
    why = "data.categorical is given" if data.categorical else needs_encoding(train)
    if why is None:
        return PassThrough(), ("none (chosen automatically: every feature column is numeric, complete, and 0/1 or "
                               "already standardised; set data.featurizer: tabular to standardise them)")
    return TabularFeaturizer(categorical=data.categorical), (f"tabular (chosen automatically: {why}): numbers "
                                                            "standardised, categories one-hot")


def in_memory_model(config: AuditConfig) -> nn.Module | None:
    """The model given to ``auditkit.audit(model=...)`` (checked: a torch ``nn.Module``), or None when the
    configuration's builder and weights make it."""
    model = config.inputs.model if config.inputs is not None else None
    if model is not None and isinstance(getattr(model, "module", None), nn.Module):
        raise InputError(f"model: got a {type(model).__name__}, not a torch nn.Module: pass its torch module "
                         "(model=converted.module) and set model.loss and model.l2 in the configuration to its loss "
                         "and l2")
    if model is not None and not isinstance(model, nn.Module):
        raise InputError(f"model: got a {type(model).__name__}, not a torch nn.Module: pass the trained torch model "
                         "(a scikit-learn classifier converts with auditkit.models.from_sklearn)")
    return model


def model_builder(builder: str | None, model: nn.Module | None) -> str:
    """How the audited model was made, for the run document: the ``builder``, or the class of the ``model`` given
    in memory."""
    if model is None:
        return builder
    return f"in-memory object of class {type(model).__module__}.{type(model).__qualname__} (auditkit.audit(model=...))"


def load_model(config: AuditConfig, splits: dict[str, AuditData]) -> nn.Module:
    """:func:`build_checked_model` of the configuration's ``model`` section (or the model given in memory)."""
    weights = config.path(config.model.weights) if config.model.weights else None
    return build_checked_model(config.model, splits["train"], given=in_memory_model(config), weights=weights,
                               base_dir=config.base_dir)


def build_checked_model(m: ModelConfig, train: AuditData, *, given: nn.Module | None, weights: Path | None,
                        base_dir: Path) -> nn.Module:
    """The model from its builder and ``weights`` (or a copy of the model object ``given`` to ``auditkit.audit``,
    which is never changed), checked against the featurized training records and the loss."""
    if given is not None:
        model = cast_finite(copy.deepcopy(given), DTYPES[m.dtype], "model")
    else:
        model = build_model(m.builder, weights, kwargs=m.builder_args, dtype=DTYPES[m.dtype], base_dir=base_dir)
    x = torch.tensor(train.X[:2], dtype=DTYPES[m.dtype])
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # noqa: BLE001 - any failure means the data does not fit the model
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"model: the model cannot take the featurized data ({train.X.shape[1]} features per "
                         f"record): {first}. Check data.features/categorical/featurizer against the model") from None
    _finite_outputs(model, train.X, DTYPES[m.dtype], m.dtype)
    classes = len(train.classes)
    expected = (2, classes) if m.loss == "cross_entropy" else None
    if expected and tuple(out.shape) != expected:
        raise InputError(f"model: outputs of shape {tuple(out.shape[1:])} per record, but the target has {classes} "
                         f"classes: the model needs {classes} outputs for loss 'cross_entropy'")
    if m.loss == "bce" and (classes != 2 or out.reshape(2, -1).shape[1] != 1):
        raise InputError("model: loss 'bce' needs a binary target and one output per record")
    return model


def _finite_outputs(model: nn.Module, X: np.ndarray, dtype: torch.dtype, dtype_name: str,
                    chunk: int = 4096) -> None:
    """Refuse a model whose outputs on the training records are NaN or ±inf (an overflow in ``dtype``, or
    weights that diverged): every influence estimate would be NaN. One forward pass, in chunks."""
    bad = 0
    with torch.no_grad():
        for start in range(0, len(X), chunk):
            out = model(torch.as_tensor(X[start:start + chunk], dtype=dtype))
            bad += int((~torch.isfinite(out)).reshape(len(out), -1).any(dim=1).sum())
    if bad:
        fix = ("set model.dtype: float64 (the outputs overflow float32)" if dtype_name == "float32"
               else "check the weights and the featurized data (standardised features, no extreme values)")
        raise InputError(f"model: the outputs of {bad} of {len(X)} training records are not finite (NaN or ±inf): "
                         f"{fix}")


def training_function(m: ModelConfig, *, base_dir: Path, given_model: nn.Module | None = None) -> TrainFn | None:
    """The training function ``model.train_fn`` names (``warm_start`` or user code), or None; with the model's
    builder (and no model given in memory, ``given_model``) a :class:`BuiltTrainer` that can also build a fresh,
    untrained model for cold-started reference models."""
    if m.train_fn is None:
        return None
    if m.train_fn == "warm_start":
        fn = warm_start_trainer(loss=m.loss, l2=m.l2)
    else:
        fn = import_object(m.train_fn, "model.train_fn", base_dir=base_dir)
        if not callable(fn):
            raise InputError(f"model.train_fn: {m.train_fn!r} is not callable: name a function (model, X, y) -> "
                             "model")
    if given_model is not None or not m.builder:
        return fn
    # with the builder, reference models can start from its initialisation instead of the trained weights
    return BuiltTrainer(fn, functools.partial(build_model, m.builder, None, kwargs=m.builder_args,
                                              dtype=DTYPES[m.dtype], base_dir=base_dir))


def check_stationarity(m: ModelConfig, model: nn.Module, train: AuditData, *, seed: int,
                       featurizer: str = "") -> dict:
    """:func:`auditkit.influence.stationarity.stationarity` of the model on the featurized training records (its
    label shuffle seeded with ``seed``), with the threshold and the verdict; an :class:`InputError` naming the
    likely causes when the weights are far from a minimum of the stated objective (``m``: the model section),
    unless ``model.allow_non_stationary`` is set."""
    measured = stationarity(model, train.X, train.y, loss=m.loss, l2=m.l2, seed=seed, dtype=DTYPES[m.dtype])
    measured.update(threshold=STATIONARITY_THRESHOLD, stationary=bool(measured["relative"] <= STATIONARITY_THRESHOLD),
                    allowed=bool(m.allow_non_stationary))
    if measured["stationary"] or m.allow_non_stationary:
        return measured
    accuracy = "" if measured["accuracy"] is None else f", accuracy {measured['accuracy']:.3f}"
    used = featurizer.split(" (")[0] if featurizer else ""
    hint = ("'tabular' standardises and one-hot encodes" if used == "none"
            else "'none' takes already-encoded features as given")
    used = f"{used} was used; {hint}" if used else f"check it; {hint}"
    raise InputError(
        f"model: the weights are not a minimum of the stated objective (mean {m.loss} + L2) on the "
        f"{train.n} training records as featurized: gradient norm {measured['grad_norm']:.3g}, "
        f"{measured['relative']:.3g} of its size with shuffled labels (converged training reaches 1e-6 or less; "
        f"refused above {STATIONARITY_THRESHOLD:g}); training loss {measured['loss']:.4g}{accuracy}. Likely causes: "
        f"features encoded differently from training (data.featurizer: {used}), a wrong model.l2 ({m.l2}), a "
        "wrong model.loss, or a training split other than the "
        "one the model was trained on. Fix the configuration, or set model.allow_non_stationary: true to audit "
        "anyway (the report then states it as a limitation)")
