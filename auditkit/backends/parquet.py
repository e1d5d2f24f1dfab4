"""Training records in Parquet files, read a range of rows at a time: where each worker reads its own shard.

``ParquetRecords(path, target="y")`` describes records stored one per row: numeric feature columns (all
columns but the target, or those named in ``features``) and a target column. On creation only the files'
metadata is read (row counts per row group); ``read(start, stop)`` reads the row groups that hold records
``start..stop-1`` (those columns only) and returns ``(X, y)`` tensors, features as float64. The object is a
small picklable description, so a distributed backend sends it to its workers and each reads its shard:
the records never pass through the client. ``write_parquet`` writes tensors or arrays in that layout.

Paths must be readable by every worker under the same name (a shared file system, or one machine).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..influence.records import RecordSource, prepare_chunk


@lru_cache(maxsize=64)
def _parquet_file(path: str):
    """An open ``pyarrow.parquet.ParquetFile`` (one per path and process, so workers open each file once)."""
    import pyarrow.parquet as pq
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"Parquet file {path!r} cannot be read here ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}): every worker must see the training "
                         "records under the same path; use a shared folder (backend.staging)") from None


class ParquetRecords(RecordSource):
    """Records stored one per row in Parquet files: feature columns and a target column.

    ``paths``: a file, a folder (its ``*.parquet`` files in name order) or a list of files, read in that order;
    ``target``: the target column (class labels as integers, or numbers); ``features``: the feature columns, in
    order (default: every other column); ``name``: what error messages call the records.
    """

    def __init__(self, paths, *, target: str, features: list[str] | None = None, name: str = "X_train"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise InputError("ParquetRecords needs pyarrow: pip install 'auditkit[dask]' (or pyarrow)") from None
        if isinstance(paths, (str, Path)):
            p = Path(paths)
            files = sorted(p.glob("*.parquet")) if p.is_dir() else [p]
        else:
            files = [Path(f) for f in paths]
        if not files:
            raise InputError(f"no Parquet files in {str(paths)!r}: give a .parquet file, a folder of them, or a list")
        self.paths = [str(f.resolve()) for f in files]
        self.target = target
        self.name = name
        schema = _parquet_file(self.paths[0]).schema_arrow
        columns = list(schema.names)
        if target not in columns:
            raise InputError(f"target column {target!r} is not in {self.paths[0]!r} (columns {columns[:10]}...): "
                             "name the target column")
        self.features = list(features) if features is not None else [c for c in columns if c != target]
        missing = [c for c in self.features if c not in columns]
        if missing or not self.features:
            raise InputError(f"feature columns {missing or self.features!r} are not in {self.paths[0]!r}: name "
                             "existing numeric columns")
        # (file index, row group index, first record, number of records) for every row group, in order
        self.groups: list[tuple[int, int, int, int]] = []
        start = 0
        for i, path in enumerate(self.paths):
            meta = _parquet_file(path).metadata
            names = _parquet_file(path).schema_arrow.names
            if names != columns:
                raise InputError(f"Parquet file {path!r} has columns {names[:10]}..., unlike {self.paths[0]!r}: "
                                 "all files must have the same columns")
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                if rows:
                    self.groups.append((i, g, start, rows))
                    start += rows
        self.n = start
        self._starts = np.array([g[2] for g in self.groups], dtype=np.int64)

    def __repr__(self) -> str:
        return f"ParquetRecords({len(self.paths)} file(s), n={self.n}, {len(self.features)} features, " \
               f"target={self.target!r})"

    def _read_group(self, k: int):
        i, g, _, _ = self.groups[k]
        return _parquet_file(self.paths[i]).read_row_group(g, columns=[*self.features, self.target])

    def _arrays(self, table) -> tuple[np.ndarray, np.ndarray]:
        X = np.empty((table.num_rows, len(self.features)), dtype=np.float64)
        for j, c in enumerate(self.features):
            col = table.column(c)
            if col.null_count:
                raise InputError(f"{self.name}: column {c!r} has {col.null_count} missing value(s): impute or drop "
                                 "them before computing influence")
            try:
                X[:, j] = col.to_numpy(zero_copy_only=False)
            except (TypeError, ValueError):
                raise InputError(f"{self.name}: column {c!r} is not numeric ({col.type}): encode features as "
                                 "numbers before computing influence") from None
        if not np.isfinite(X).all():
            rows = np.flatnonzero(~np.isfinite(X).all(axis=1))[:5].tolist()
            raise InputError(f"{self.name} contains NaN or infinite values (rows {rows} of a shard): impute or "
                             "drop them first")
        y = table.column(self.target)
        if y.null_count:
            raise InputError(f"{self.name}: the target {self.target!r} has {y.null_count} missing value(s)")
        return X, np.array(y.to_numpy(zero_copy_only=False))  # a writable copy

    def read(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, y)`` of records ``start..stop-1``: the row groups holding them, read here (features float64)."""
        import pyarrow as pa
        start, stop = max(0, int(start)), min(self.n, int(stop))
        if stop <= start:
            return torch.zeros(0, len(self.features), dtype=torch.float64), torch.zeros(0)
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        last = int(np.searchsorted(self._starts, stop - 1, side="right")) - 1
        table = pa.concat_tables([self._read_group(k) for k in range(first, last + 1)])
        table = table.slice(start - self.groups[first][2], stop - start)
        X, y = self._arrays(table)
        return torch.from_numpy(X), torch.from_numpy(y)

    def head(self, k: int, *, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``k`` records (or fewer), for checks of shape and labels (only those rows are decoded)."""
        import pyarrow as pa
        batch = next(_parquet_file(self.paths[0]).iter_batches(batch_size=max(1, k),
                                                               columns=[*self.features, self.target]))
        X, y = self._arrays(pa.Table.from_batches([batch]))
        return prepare_chunk(torch.from_numpy(X), torch.from_numpy(y), dtype=dtype, device=device)

    def subset(self, index: torch.Tensor, *, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The records at positions ``index`` as one batch; each row group concerned is read once."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        group = np.searchsorted(self._starts, index, side="right") - 1
        X = np.empty((len(index), len(self.features)), dtype=np.float64)
        y = None
        for k in np.unique(group):
            at = np.flatnonzero(group == k)
            Xg, yg = self._arrays(self._read_group(int(k)))
            rows = index[at] - self.groups[k][2]
            X[at] = Xg[rows]
            if y is None:
                y = np.empty(len(index), dtype=yg.dtype)
            y[at] = yg[rows]
        return prepare_chunk(torch.from_numpy(X), torch.from_numpy(y), dtype=dtype, device=device)

    def targets(self) -> torch.Tensor:
        """The distinct target values (enough for the engine's label checks; the column is read a row group
        at a time, so memory holds one group's targets plus the distinct values)."""
        import pyarrow.compute as pc
        seen = None
        for i, g, _, _ in self.groups:
            values = pc.unique(_parquet_file(self.paths[i]).read_row_group(g, columns=[self.target])
                               .column(0)).to_numpy(zero_copy_only=False)
            seen = values if seen is None else np.unique(np.concatenate([seen, values]))
        return torch.from_numpy(np.sort(np.asarray(seen)))


def write_parquet(X, y, path, *, target: str = "target", feature_names: list[str] | None = None,
                  row_group_size: int = 4096, name: str = "X_train") -> ParquetRecords:
    """Write records ``X`` (n, d) and targets ``y`` (n,) to one Parquet file, one record per row (features
    ``x0..x{d-1}`` or ``feature_names``, float64; the target as given), in row groups of ``row_group_size``
    records (the unit a worker reads). Returns the :class:`ParquetRecords` that reads them back."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    X = np.asarray(X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X, dtype=np.float64)
    y = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise InputError(f"write_parquet needs X of shape (n, d) and y of shape (n,), got {X.shape} and {y.shape}")
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(X.shape[1])]
    if len(names) != X.shape[1] or target in names:
        raise InputError(f"feature_names must be {X.shape[1]} names that differ from the target {target!r}")
    table = pa.table({**{c: X[:, j] for j, c in enumerate(names)}, target: y})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, row_group_size=max(1, int(row_group_size)))
    tmp.replace(path)
    _parquet_file.cache_clear()
    return ParquetRecords(path, target=target, features=names, name=name)

