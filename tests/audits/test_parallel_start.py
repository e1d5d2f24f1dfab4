"""Worker processes that die while starting: the models are still trained, here, with a warning; nothing hangs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import ROOT

#: A user's script with its audit at top level, no ``if __name__ == "__main__":`` guard. Every spawned worker runs
#: it again while starting and dies there (Python refuses to start processes from a process still starting). The
#: job holds 4 MB of data, far more than a pipe buffers: written into a dead worker's pipe it could block for ever.
SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    sys.path.insert(0, {root!r})
    import numpy as np, torch
    from auditkit.audits.base import warm_start_trainer
    from auditkit.audits.privacy.parallel import train_job

    rng = np.random.default_rng(0)
    X = rng.normal(size=(25_000, 20))
    y = (X[:, 0] > 0).astype(np.int64)
    members = np.zeros((3, len(X)), dtype=bool)
    members[:, :200] = True
    job = {{"model": torch.nn.Linear(20, 2).double(), "train_fn": warm_start_trainer(l2=0.1), "X": X, "y": y,
            "members": members, "seed": 0, "cold": True, "build": None}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        states, used = train_job(job, range(3), workers=2, min_parallel_s=0.0)
    here, _ = train_job(job, range(3), workers=1)
    same = all(torch.equal(states[k][0][n], here[k][0][n]) for k in range(3) for n in here[k][0])
    print(json.dumps({{"used": used, "models": sorted(states), "same": same,
                      "warnings": [str(w.message) for w in caught]}}))
""")


def test_workers_that_die_starting_fall_back_to_this_process_with_a_warning(tmp_path):
    script = tmp_path / "audit_script.py"
    script.write_text(SCRIPT.format(root=str(ROOT)))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["used"] == 1 and out["models"] == [0, 1, 2]
    assert out["same"]                                   # the models the fallback trained are the seeded ones
    assert any(w.startswith("the worker processes that train the reference models could not start")
               and 'if __name__ == "__main__":' in w for w in out["warnings"]), out["warnings"]
