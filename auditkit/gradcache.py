"""An on-disk cache of per-record training gradients, so re-running an audit or adding a measurement does not
recompute them.

Plug it into the engine as its gradient source (``auditkit.influence.passes``)::

    cache = GradientCache("~/.cache/auditkit/gradients")           # or GradientCache(dir, projection_dim=512)
    eng = InfluenceEngine(model, "cross_entropy", l2=1e-3, gradients=cache).fit(X, y)
    eng.batch(measures=..., test=..., self_influence=True)          # first run: computes and writes G
    # a later run with the same model parameters and training data reads G from disk instead

**Files.** One ``<key>.npy`` per (model, data, setting): an (n, p) array (or (n, d) when projected) in the
engine's dtype, readable with ``numpy.load(path, mmap_mode="r")``, and ``<key>.json`` describing it. It is
written chunk by chunk to a temporary file renamed when complete (an interrupted run leaves no entry), and
read chunk by chunk with plain file reads (not a memory map, whose touched pages would count in the
process's resident memory), so memory stays one chunk whatever n is. Disk: n · p · 8 bytes in float64.

**Key.** SHA-256 of: the model's parameters and buffers at the engine's dtype (values, names, shapes), the
parameters influence is computed for, the loss (its name, or a callable's qualified name: rename a custom
loss function when you change it), the dtype, the training records as the engine streams them (features
and targets, bytes and shapes; one pass over the data, not the gradients), and the projection (kind,
dimension, seed). Any change of model or data gives another key: a miss, never a stale hit.

**Projection (optional).** With ``projection_dim=d`` the cache holds ``P g_j`` for a seeded random
P (d × p): ``"gaussian"`` entries N(0, 1/d) or ``"rademacher"`` entries ±1/√d. The cross terms become
``(1/n) (P H⁻¹v)ᵀ (P g_j)``, unbiased for ``(1/n) vᵀH⁻¹ g_j``, with variance
``((aᵀb)² + ‖a‖²‖b‖²)/(d·n²) ≤ 2‖a‖²‖b‖²/(d·n²)`` for a = H⁻¹v, b = g_j (Gaussian; Rademacher is no larger).
So the standard error of each projected influence is at most ``√(2/d)·‖H⁻¹v‖·‖g_j‖/n``, and
``P(|error| > ε‖a‖‖b‖/n) ≤ 4·exp(−d(ε² − ε³)/4)`` (Johnson–Lindenstrauss, for 0 < ε < 1). Self-influence
``gᵀH⁻¹g`` cannot be formed from P g: the engine computes it from the model's gradients (or from EK-FAC's
layer factors) and uses the projected cache for influence on test records and measurements only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .errors import InputError

FORMAT = "auditkit-gradcache-1"
PROJECTIONS = ("gaussian", "rademacher")


def _update(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())


def model_sha256(engine) -> str:
    """SHA-256 of the parameters and buffers the engine differentiates at (values, names, shapes, dtype)."""
    fn = engine.fn_
    h = hashlib.sha256(FORMAT.encode())
    for name, value in zip(fn.names, torch.split(fn.theta, fn.sizes), strict=True):
        h.update(name.encode())
        _update(h, value)
    for name in sorted(fn.fixed):
        h.update(b"fixed:" + name.encode())
        _update(h, fn.fixed[name])
    loss = engine.loss if isinstance(engine.loss, str) else \
        f"{getattr(engine.loss, '__module__', '')}.{getattr(engine.loss, '__qualname__', type(engine.loss).__name__)}"
    h.update(f"loss={loss};dtype={engine.dtype}".encode())
    return h.hexdigest()


def data_sha256(engine, *, chunk: int = 8192) -> str:
    """SHA-256 of the training records as the engine streams them (features and targets)."""
    h = hashlib.sha256(FORMAT.encode())
    h.update(f"n={engine.n_train_}".encode())
    for x, y in engine.train_.chunks(chunk, dtype=engine.dtype, device=engine.device):
        _update(h, x)
        _update(h, y)
    return h.hexdigest()


class GradientCache:
    """Per-record training gradients on disk, keyed by hashes of model and data (see the module docstring).

    Parameters
    ----------
    directory : path
        Where the ``.npy`` files go (created if missing).
    projection_dim : int, optional
        Store randomly projected gradients ``P g`` of this dimension instead of g.
    projection : ``"gaussian"`` or ``"rademacher"``
        Distribution of P's entries (scaled so that ``E[PᵀP] = I``).
    seed : int
        Seed of P.

    ``hits`` and ``misses`` count the passes served from disk and computed; ``last`` describes the last entry
    used (key, model and data hashes, path).
    """

    def __init__(self, directory, *, projection_dim: int | None = None, projection: str = "gaussian", seed: int = 0):
        self.directory = Path(os.path.expanduser(str(directory)))
        if projection_dim is not None and (isinstance(projection_dim, bool) or not isinstance(projection_dim, int)
                                           or projection_dim < 1):
            raise InputError(f"projection_dim={projection_dim!r} is not allowed: it must be a positive integer "
                             "or None")
        if projection not in PROJECTIONS:
            raise InputError(f"projection={projection!r} is not allowed: use one of {list(PROJECTIONS)}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InputError(f"seed={seed!r} is not allowed: it must be an integer")
        self.projection_dim, self.projection, self.seed = projection_dim, projection, seed
        self.hits = self.misses = 0
        self.last: dict | None = None
        self._memo: dict = {}
        self._P: torch.Tensor | None = None

    @property
    def projected(self) -> bool:
        return self.projection_dim is not None

    # ------------------------------------------------------------------------------------ projection
    def matrix(self, p: int, *, dtype, device) -> torch.Tensor:
        """P (d, p), generated from the seed in float64 on the CPU (the same on every machine)."""
        d = self.projection_dim
        if self._P is None or self._P.shape != (d, p) or self._P.dtype != dtype or self._P.device != device:
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            if self.projection == "gaussian":
                P = torch.randn(d, p, generator=gen, dtype=torch.float64)
            else:
                P = torch.randint(0, 2, (d, p), generator=gen).to(torch.float64) * 2 - 1
            self._P = (P / d ** 0.5).to(dtype=dtype, device=device)
        return self._P

    def project(self, V: torch.Tensor) -> torch.Tensor:
        if not self.projected:
            return V
        return V @ self.matrix(V.shape[1], dtype=V.dtype, device=V.device).T

    # ------------------------------------------------------------------------------------ keys
    def describe(self, engine) -> dict:
        """Key, hashes and path of the entry for this fitted engine (the data hash costs one pass over the data;
        it is remembered for the engine's current fit)."""
        memo_key = (id(engine.fn_), id(engine.train_))
        if memo_key not in self._memo:
            model, data = model_sha256(engine), data_sha256(engine)
            setting = {"format": FORMAT, "model_sha256": model, "data_sha256": data, "n": engine.n_train_,
                       "p": engine.n_params_, "dtype": str(engine.dtype).replace("torch.", ""),
                       "projection": None if not self.projected else
                       {"kind": self.projection, "dim": self.projection_dim, "seed": self.seed}}
            key = hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()
            self._memo.clear()                         # keep the objects alive so their ids stay unique
            self._memo[memo_key] = ({**setting, "key": key, "path": str(self.directory / f"{key}.npy")},
                                    engine.fn_, engine.train_)
        return self._memo[memo_key][0]

    # ------------------------------------------------------------------------------------ the stream
    def stream(self, engine, chunks) -> Iterator[tuple]:
        """``(x, y, G_cross, G_full)`` per chunk, from disk when the entry exists, else computed and written."""
        info = self.describe(engine)
        self.last = info
        width = self.projection_dim if self.projected else engine.n_params_
        dtype = np.dtype(np.float64 if engine.dtype == torch.float64 else np.float32)
        path = Path(info["path"])
        offset = self._readable(path, (engine.n_train_, width), dtype)
        if offset is not None:
            self.hits += 1
            yield from self._read(path, offset, width, dtype, chunks, engine)
        else:
            self.misses += 1
            yield from self._write(path, info, width, dtype, chunks, engine)

    @staticmethod
    def _readable(path: Path, shape: tuple, dtype: np.dtype) -> int | None:
        """Offset of the data in a complete entry of this shape and dtype, else None."""
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)(f)
                offset = f.tell()
            if header[0] != shape or header[1] or np.dtype(header[2]) != dtype:
                return None
            if os.path.getsize(path) != offset + int(np.prod(shape)) * dtype.itemsize:
                return None
            return offset
        except (OSError, ValueError):
            return None

    def _read(self, path: Path, offset: int, width: int, dtype: np.dtype, chunks, engine):
        row = width * dtype.itemsize
        start = 0
        with open(path, "rb") as f:
            for x, y in chunks:
                b = x.shape[0]
                f.seek(offset + start * row)
                G = torch.from_numpy(np.fromfile(f, dtype=dtype, count=b * width).reshape(b, width)).to(engine.device)
                yield x, y, G, (None if self.projected else G)
                start += b

    def _write(self, path: Path, info: dict, width: int, dtype: np.dtype, chunks, engine):
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp-{os.getpid()}")
        done = 0
        try:
            with open(temporary, "wb") as f:
                np.lib.format.write_array_header_1_0(
                    f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                        "shape": (engine.n_train_, width)})
                for x, y in chunks:
                    G = engine.fn_.per_record_grads(x, y)
                    stored = self.project(G)
                    f.write(stored.detach().cpu().numpy().astype(dtype, copy=False).tobytes())
                    done += x.shape[0]
                    yield x, y, stored, G
            if done != engine.n_train_:
                raise InputError(f"the training records gave {done} chunks' rows, expected {engine.n_train_}")
            os.replace(temporary, path)
            path.with_suffix(".json").write_text(json.dumps({k: v for k, v in info.items() if k != "path"},
                                                            indent=1))
        finally:
            if temporary.exists():
                temporary.unlink()
