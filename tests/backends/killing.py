"""Training records whose reading kills the Dask worker process that reads a given shard, once (for the
worker-loss tests). A module of its own, importable by the scheduler and the workers (on their PYTHONPATH)."""

from __future__ import annotations

import os
import signal

from auditkit.backends.parquet import ParquetRecords


class KillingRecords(ParquetRecords):
    """``ParquetRecords`` whose worker process kills itself (SIGKILL, no clean-up) the first time it starts reading
    the shard that holds record ``at`` (whatever the shards' bounds); the file ``marker`` records that it happened
    and the pid that died. Outside a Dask worker it reads normally."""

    def __init__(self, base: ParquetRecords, *, at: int, marker):
        self.__dict__.update(base.__dict__)
        self.at, self.marker = at, str(marker)

    def read(self, start: int, stop: int):
        if start <= self.at < stop and not os.path.exists(self.marker):
            try:
                from distributed import get_worker
                get_worker()
            except ValueError:
                return super().read(start, stop)
            with open(self.marker, "x") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().read(start, stop)
