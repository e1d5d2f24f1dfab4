"""A plugin auditkit does not know, installed through the ``auditkit.audits`` entry-point group (a temporary
dist-info on sys.path, nothing in auditkit changed): its findings land in the run's ``plugins`` section, and the
ranking it declares is recomputed by the stability check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT
from third_party_plugin import mean_loss

import auditkit as ak
from auditkit.audits.registry import available_plugins
from auditkit.config import parse_config
from auditkit.inputs import load_data, load_model
from auditkit.runner import audit

EXAMPLE = ROOT / "examples/heart_disease"


def install(site: Path) -> None:
    """A distribution 'tiny-audit' that registers ``tiny = third_party_plugin:TinyAudit``."""
    info = site / "tiny_audit-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-audit\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[auditkit.audits]\ntiny = third_party_plugin:TinyAudit\n")


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    install(site)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        mp.syspath_prepend(str(Path(__file__).parent))
        assert "tiny" in available_plugins()                       # entry_points() sees it
        doc = yaml.safe_load((EXAMPLE / "audit.yaml").read_text())
        doc.update(audits={"tiny": {"top": 8}}, policy=None, history=False)
        doc["model"]["train_fn"] = None
        doc["influence"]["stability"] = {"damping_factors": [10.0], "second_solver": "cg", "top_k": 3}
        config = parse_config(doc, base_dir=EXAMPLE)
        result = audit(config, tmp_path_factory.mktemp("out") / "report")
    assert "tiny" not in available_plugins()                       # gone with its dist-info
    return config, result.run.to_json_dict(), result.paths


def test_its_findings_land_in_the_plugins_section(ran):
    config, run, _ = ran
    splits = load_data(config).splits
    model = load_model(config, splits)
    X, y = torch.tensor(splits["test"].X), torch.tensor(splits["test"].y)
    with torch.no_grad():
        expected = float(mean_loss(model(X), y))
    findings = run["plugins"]["tiny"]
    assert findings["mean_test_loss"] == pytest.approx(expected, rel=1e-12)
    assert len(findings["top"]) == 8 and findings["effects"] == sorted(findings["effects"])
    assert all(run.get(k) is None for k in ("fairness", "privacy", "data_quality"))


def test_its_findings_appear_in_the_report(ran):
    """The report's generic section for a plugin auditkit does not know: its name as the heading, its scalar
    findings in a label/value table, its list of records as a table (the values the run holds)."""
    _, run, paths = ran
    html = Path(paths["report.html"]).read_text()
    section = html[html.index("<h2>13. tiny</h2>"):]      # the section after the twelve built-in ones
    findings = run["plugins"]["tiny"]
    assert "mean_test_loss" in section and f"{findings['mean_test_loss']:.4g}" in section
    assert "tiny" in json.loads(Path(paths["findings.json"]).read_text())["plugins"]     # and in findings.json


def test_its_ranking_is_checked_for_stability(ran):
    """The agreement is the top-k overlap (k = 8, the plugin's own) between the audit's engine and engines
    fitted here independently: more ridge (×10) and CG; ground truth from the engines' own answers."""
    config, run, _ = ran
    splits = load_data(config).splits
    model = load_model(config, splits)
    Xt, yt = torch.tensor(splits["train"].X), torch.tensor(splits["train"].y)
    X, y = torch.tensor(splits["test"].X), torch.tensor(splits["test"].y)
    l2 = config.model.l2

    def top(engine) -> set[int]:
        return set(np.argsort(engine.fit(Xt, yt).influence_on(mean_loss, X, y), kind="stable")[:8].tolist())

    own = top(ak.InfluenceEngine(model, "cross_entropy", l2=l2))
    ridge = top(ak.InfluenceEngine(model, "cross_entropy", l2=l2 * 10))
    cg = top(ak.InfluenceEngine(model, "cross_entropy", l2=l2, method="cg"))
    [finding] = run["influence"]["stability"]["findings"]
    assert (finding["plugin"], finding["kind"], finding["k"]) == ("tiny", "tiny_top", 8)
    assert finding["agreement"] == {"ridge ×10": len(own & ridge) / 8, "solver cg": len(own & cg) / 8}
    assert finding["agreement"]["ridge ×10"] < 1                 # the check can tell rankings apart
    robust = all(a >= config.influence.stability.robust_agreement for a in finding["agreement"].values())
    assert finding["verdict"] == ("robust" if robust else "sensitive")
