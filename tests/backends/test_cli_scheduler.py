"""``auditkit run --scheduler`` against a separately started ``dask scheduler`` + ``dask worker`` processes gives
the findings of an in-process run; configuration and connection problems are one-line errors, exit 2.

The heart-disease example (exact solver; the stability check's EK-FAC and ridge engines run on the workers
too). The in-process run is ``run_audit`` in this process (no report rendering); the CLI run renders with a
one-line template (the report is not what is compared, and the full PDF takes most of a run's time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import backend_fixtures
import dask
import pytest
import torch

from auditkit.cli import main
from auditkit.config import BackendConfig, load_config, parse_config
from auditkit.errors import InputError
from auditkit.runner import run_audit
from auditkit.writer import findings_of

scheduler, cluster = backend_fixtures.scheduler, backend_fixtures.cluster   # fixtures
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "heart_disease" / "audit.yaml"
VOLATILE = {("report_id",), ("created_utc",), ("provenance", "command"), ("privacy", "trust", "seconds")}  # measured


def stable(findings: dict) -> dict:
    out = json.loads(json.dumps(findings))
    for *parents, key in VOLATILE:
        node = out
        for p in parents:
            node = node[p]
        node.pop(key)
    return out


def compare(actual, expected, where: str, diffs: list) -> None:
    """Same structure, strings, integers and booleans; floats within 1e-9 relative (sums in another order).
    Floats that differ at all are appended to ``diffs``."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(actual) == sorted(expected), where
        for k in expected:
            compare(actual[k], expected[k], f"{where}.{k}", diffs)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            compare(a, e, f"{where}[{i}]", diffs)
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12), where
        if actual != expected:
            diffs.append(where)
    else:
        assert actual == expected, where


def test_cli_with_scheduler_gives_the_findings_of_an_in_process_run(scheduler, cluster, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("AUDITKIT_TOKEN_KEY", "one token key for both runs compared")   # else each run draws one
    # both worker processes up before the CLI connects (the run counts the threads it finds; a worker killed by
    # an earlier test is restarted by its nanny, which takes a moment)
    cluster.client.wait_for_workers(2, timeout=120)
    local = stable(findings_of(run_audit(load_config(CONFIG)).run))
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.html.j2").write_text("<!doctype html><html><head><meta charset='utf-8'><title>t</title>"
                                              "</head><body><p>{{ doc.title }}</p></body></html>")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "auditkit", "run", str(CONFIG), "--out", str(out), "--quiet",
                           "--scheduler", scheduler, "--templates", str(templates)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr              # 1: a policy rule failed (the example's verdict)
    remote = stable(json.loads((out / "findings.json").read_text()))
    run = json.loads((out / "run.json").read_text())
    assert run["runtime"]["backend"] == f"DaskBackend({scheduler}), 2 worker thread(s)"
    diffs = []
    compare(remote, local, "findings", diffs)
    assert remote["status"] == local["status"] and remote["privacy"]["flags"] == local["privacy"]["flags"]
    print(f"{len(diffs)} float(s) differ in their last bits: {diffs[:5]}")


def test_an_unreachable_scheduler_is_a_one_line_error_with_exit_2(tmp_path, capsys):
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["run", str(CONFIG), "--out", str(tmp_path / "out"), "--quiet", "--scheduler",
                     "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("auditkit: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9 (")
    assert err.endswith("start it with `dask scheduler` and workers with `dask worker tcp://127.0.0.1:9`, or fix "
                        "the address (backend.scheduler or --scheduler)")
    assert "\n" not in err and not (tmp_path / "out").exists()


def test_a_malformed_scheduler_address_is_refused_with_exit_2(tmp_path, capsys):
    code = main(["run", str(CONFIG), "--out", str(tmp_path / "out"), "--scheduler", "localhost"])
    assert code == 2
    assert capsys.readouterr().err.strip() == ("auditkit: error: --scheduler 'localhost': must be a scheduler "
                                               "address like tcp://host:8786")


@pytest.mark.parametrize("backend, message", [
    ({"kind": "local", "workers": 2}, "backend: scheduler, workers and staging need kind 'dask': set kind: dask, or "
                                      "remove them"),
    ({"kind": "dask", "scheduler": "tcp://h:8786", "workers": 2}, "backend: give scheduler (an existing cluster) or "
                                                                  "workers (a local cluster), not both"),
    ({"kind": "dask", "scheduler": "h:8786"}, "backend.scheduler: must be a scheduler address like tcp://host:8786 "
                                              "(got 'h:8786')"),
    ({"kind": "spark"}, "backend.kind: Input should be 'local' or 'dask' (got 'spark')"),
])
def test_the_backend_section_is_validated(backend, message):
    data = {"model": {"name": "m", "builder": "a.b:c"}, "data": {"train": "t.csv", "test": "s.csv", "target": "y",
                                                                  "sensitive": [{"column": "sex"}]},
            "backend": backend}
    with pytest.raises(InputError) as err:
        parse_config(data, where="audit.yaml")
    assert str(err.value) == f"audit.yaml: {message}"


def test_the_gradient_cache_cannot_run_on_a_cluster(tmp_path):
    from auditkit.runner import check_config
    config = load_config(CONFIG)
    config = config.model_copy(update={"backend": BackendConfig(kind="dask", workers=1),
                                       "influence": config.influence.model_copy(update={"cache": str(tmp_path)})})
    with pytest.raises(InputError, match=r"^influence.cache reads gradients on this machine and cannot be combined "
                                         r"with backend kind 'dask': remove influence.cache or the backend$"):
        check_config(config)


def test_a_missing_staging_folder_is_refused_before_any_work(tmp_path):
    config = load_config(CONFIG)
    config = config.model_copy(update={"backend": BackendConfig(kind="dask", workers=1,
                                                                staging=str(tmp_path / "absent"))})
    with pytest.raises(InputError) as err:
        run_audit(config)
    assert str(err.value) == (f"backend.staging: folder {str(tmp_path / 'absent')!r} does not exist: create it (on a "
                              "file system every worker can read under the same path) or remove backend.staging")
