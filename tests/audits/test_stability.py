"""The stability check: top-k agreement between the audit's engine and other settings, and its verdict."""

from __future__ import annotations

import pytest
import torch
from test_fairness_plugin import L2, context_for, heart_splits

import auditkit as ak
from auditkit.audits.fairness.plugin import FairnessAudit
from auditkit.audits.privacy.plugin import PrivacyAudit
from auditkit.audits.quality import DataQualityAudit
from auditkit.audits.stability import stability
from auditkit.errors import SingularHessianError

FINDINGS = {"privacy": {"trust": {"checked": False}}, "data_quality": {}}
PLUGINS = {"fairness": FairnessAudit, "privacy": PrivacyAudit, "data_quality": DataQualityAudit}


def declared(context, findings):
    """The rankings the plugins declare for ``findings``, as the runner collects them."""
    return [(name, r) for name, found in findings.items() for r in PLUGINS[name]().rankings(found, context)]


@pytest.fixture(scope="module")
def context():
    return context_for(heart_splits(), train_fn=False)


def engine_with(context, l2):
    X, y = context.tensor("train")
    return ak.InfluenceEngine(context.model, "cross_entropy", l2=l2).fit(X, y)


def test_a_measured_data_quality_ranking_is_not_among_the_influence_findings_checked(context):
    """With a training function the ranking is by out-of-fold losses: no engine setting can change it."""
    measured = {**FINDINGS, "data_quality": {"out_of_fold": True}}
    assert [r["kind"] for r in stability(context, declared(context, measured), {"same": context.engine})] == [
        "privacy_top"]


def test_the_same_engine_agrees_fully_and_a_failed_setting_does_not_decide(context):
    failed = SingularHessianError("the Hessian is not positive definite: pass damping")
    results = stability(context, declared(context, FINDINGS), {"same": context.engine, "less ridge": failed})
    assert [(r["plugin"], r["kind"]) for r in results] == [("privacy", "privacy_top"), ("data_quality", "quality_top")]
    for r in results:
        assert r["agreement"] == {"same": 1.0, "less ridge": None}
        assert r["failures"] == {"less ridge": "the Hessian is not positive definite"}
        assert r["verdict"] == "robust"


def test_agreement_is_the_top_k_overlap_and_decides_the_verdict(context):
    other = engine_with(context, 50 * L2)       # far more ridge: the top records change
    [privacy, _] = stability(context, declared(context, FINDINGS), {"more ridge": other}, k=10,
                             robust_agreement=0.95)
    s_own = context.engine.self_influence(leverage=True)
    s_other = other.self_influence(leverage=True)
    expected = len(set(torch.tensor(s_own).argsort(descending=True)[:10].tolist())
                   & set(torch.tensor(s_other).argsort(descending=True)[:10].tolist())) / 10
    assert privacy["agreement"]["more ridge"] == pytest.approx(expected)
    assert privacy["verdict"] == ("robust" if expected >= 0.95 else "sensitive")
    assert expected < 1.0                        # the check can fail: this setting does change the ranking


def test_a_finding_with_no_computed_setting_is_sensitive(context):
    failed = SingularHessianError("singular: add damping")
    assert {r["verdict"] for r in stability(context, declared(context, FINDINGS), {"only": failed})} == {"sensitive"}
