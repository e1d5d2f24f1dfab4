"""Numerical trouble on real data: a singular Hessian, separable data, extreme logits, float32 overflow and a
plugin value that is not a number. In each, no NaN or infinity reaches the findings or the report (the
findings are strict JSON, the report prints "—") and the run document states the condition as a fact
(``influence.fitting``, ``numerics``), from which the report composes its limitations
(:mod:`auditkit.report.limitations`): each test asserts both."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from reliability_support import make_case, report_html, text_of

import auditkit
from auditkit.config import load_config
from auditkit.inputs import load_data
from auditkit.numerics import nonfinite_paths
from auditkit.report.limitations import numerical_limitations
from auditkit.rundoc import Numerics
from auditkit.runner import audit
from auditkit.writer import findings_of

NOT_A_NUMBER = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


def cheap(doc):
    """Fewer bootstrap samples and no retraining: the conditions under test are in the influence step."""
    doc["audits"]["fairness"]["bootstrap"] = 20
    doc["model"]["allow_non_stationary"] = True     # the cases are off a minimum on purpose (scaled weights, ...)
    doc["model"]["train_fn"] = None
    doc["history"] = False


def checked(config) -> tuple[dict, str]:
    """Run the audit (nothing written); assert that no NaN/inf is in the findings or the report's text; return
    the run and the report's limitations section as text."""
    run = audit(config).run.to_json_dict()
    json.dumps(findings_of(run), allow_nan=False)          # raises on NaN/inf
    json.dumps(run, allow_nan=False)
    text = text_of(report_html(run))
    assert not NOT_A_NUMBER.search(text), NOT_A_NUMBER.search(text)
    limitations = text[text.rindex("14. Limitations"):text.rindex("15. History")]   # the section, not the contents
    return run, limitations


def test_a_singular_hessian_is_damped_and_named(tmp_path):
    """Without L2 the one-hot columns and the bias are collinear: H is singular."""
    run, limitations = checked(make_case(tmp_path, edit=lambda d: (cheap(d), d["model"].update(l2=0.0))))
    damping = run["influence"]["damping"]
    assert damping > 0
    fitting = run["influence"]["fitting"]
    assert fitting["damping_source"] == "auto"
    assert fitting["steps"] == ["exact solver, no damping: Hessian not positive definite",
                                f"refit with damping {damping:.2g}"]
    assert "damping_note" not in run["influence"] and run["limitations"] == []
    assert "singular or not positive definite" in limitations and f"damping of {damping:.2g}" in limitations


def test_cg_meeting_a_singular_hessian_late_gets_the_automatic_damping_too(tmp_path, monkeypatch):
    """CG finds non-positive curvature only when it first solves, after fitting; that used to end the run with
    exit 3 (SingularHessianError) although the configuration asked for automatic damping. Round-off used to take
    this case's self-influence solves into H's null space (l2 = 0, collinear one-hot columns); since the leverage
    rows are solved on a basis without round-off rows it no longer does, so the undamped solver's first solve
    meets the curvature CG reports there (fault injection). A smaller training split keeps it quick."""
    from auditkit import runner
    from auditkit.influence.solvers import cg

    real_solve = cg.CGSolver.solve

    def solve(self, B):
        if self.hessian_.damping == 0:
            raise cg._not_positive("cg", -1e-17)
        return real_solve(self, B)

    monkeypatch.setattr(cg.CGSolver, "solve", solve)
    calls = []
    real = runner.EngineFactory.refit_after
    monkeypatch.setattr(runner.EngineFactory, "refit_after",
                        lambda self, exc, *a: calls.append(exc) or real(self, exc, *a))
    config = make_case(tmp_path, edit=lambda d: (cheap(d), d["model"].update(l2=0.0), d["influence"].update(
        method="cg", stability={"damping_factors": [], "second_solver": "none"}),
        d["data"]["split"].update(test=0.5, holdout=0.3), d.update(audits={"data_quality": {}}, policy=None)))
    run, limitations = checked(config)
    assert len(calls) == 1                                                   # fitted, failed in the first pass,
    assert run["influence"]["method"] == "cg" and run["influence"]["damping"] > 0   # refitted with damping
    assert run["influence"]["fitting"]["damping_source"] == "auto"
    assert run["influence"]["fitting"]["steps"][:2] == [
        "cg solver fitted without damping: cg does not test the Hessian's definiteness when fitting (a solve that "
        "meets non-positive curvature refits with damping)",
        "cg solver, no damping: non-positive curvature met in the first solve"]
    assert "singular or not positive definite" in limitations


def test_separable_data_are_named(tmp_path):
    """A target that one feature separates, and a model trained on it to a minimum with almost no L2:
    the weights grow until most training records are predicted with certainty."""
    def separable(frame):
        frame["disease"] = np.where(frame["thalch"].fillna(140) > 140, "yes", "no")
        return frame

    config = make_case(tmp_path, table=separable, edit=lambda d: (cheap(d), d["model"].update(l2=1e-6)))
    train = load_data(load_config(config)).splits["train"]
    X, y = torch.tensor(train.X), torch.tensor(train.y)
    model = torch.nn.Linear(X.shape[1], 2).double()
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    assert auditkit.fit_model(model, X, y, loss="cross_entropy", l2=1e-6)["converged"]
    torch.save(model.state_dict(), tmp_path / "weights.pt")

    run, limitations = checked(config)
    saturated = run["numerics"]["saturation"]
    assert saturated["certain_right"] + saturated["certain_wrong"] > 0.3 * saturated["n"]
    assert saturated["n"] == train.n and saturated["dtype"] == "float64"
    [sentence] = numerical_limitations(Numerics.model_validate(run["numerics"]))    # what the facts let one say
    assert "separable" in sentence and " ".join(sentence.split()) in " ".join(limitations.split())


def test_extreme_logits_are_named(tmp_path):
    """The example's weights times 1000: logits in the thousands, probabilities exactly 0 or 1."""
    config = make_case(tmp_path, edit=cheap)
    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    torch.save({k: v * 1000 for k, v in state.items()}, tmp_path / "weights.pt")
    run, limitations = checked(config)
    saturated = run["numerics"]["saturation"]
    assert saturated["max_abs_logit"] > 1000
    assert "with certainty" in limitations
    assert saturated["certain_wrong"] > 0                                      # some are certain and wrong


def test_float32_overflow_is_recomputed_in_float64_and_named(tmp_path):
    """Features of magnitude 1e19 in float32: the model's outputs are finite, but the squared gradient norms
    behind self-influence overflow (> 3.4e38). The audit is redone in float64, and the report says so."""
    config = make_case(tmp_path, edit=lambda d: (cheap(d), d["model"].update(dtype="float32"),
                                                 d["data"].update(featurizer="reliability_support:scaled_1e19")))
    run, limitations = checked(config)
    assert run["influence"]["dtype"] == "float64"
    assert "configured for float32" in limitations and "recomputed in float64" in limitations
    fitting = run["influence"]["fitting"]
    assert fitting["dtype_requested"] == "float32" and fitting["dtype_used"] == "float64"
    assert fitting["float32_overflows"] > 0
    assert fitting["steps"][0] == (f"{fitting['float32_overflows']} influence values overflowed float32: the whole "
                                   "audit was recomputed in float64")


def test_a_value_that_is_not_a_number_is_shown_as_a_dash_and_named(tmp_path, monkeypatch):
    """Fault injection: the privacy plugin's loss-attack AUC comes back NaN. The findings carry null, the
    report a dash, the policy rule on it 'insufficient data', and the limitations say which value it was."""
    from auditkit import runner

    real = runner.run_plugin

    class WithNaN:
        def __init__(self, findings):
            self.findings = findings

        def to_dict(self):
            out = self.findings.to_dict()
            out["attacks"]["loss"]["auc"] = math.nan
            return out

    monkeypatch.setattr(runner, "run_plugin", lambda name, context, options: WithNaN(real(name, context, options))
                        if name == "privacy" else real(name, context, options))
    run, limitations = checked(make_case(tmp_path, edit=cheap))
    assert run["privacy"]["attacks"]["loss"]["auc"] is None
    assert "could not be computed" in limitations and "privacy: 1 (auc)" in limitations
    assert run["numerics"]["nonfinite"]["privacy"] == ["attacks.loss.auc"]
    assert run["numerics"]["nonfinite"]["fairness"] == []
    checks = [c for c in run["checks"] if c["metric"] == "privacy.loss.auc" and c.get("attribute") is None]
    assert checks and all(c["status"] == "insufficient_data" for c in checks)


@pytest.mark.parametrize("value, paths", [
    ({"a": 1.0, "b": [0.5, float("nan")], "c": {"d": np.float32("inf")}}, ["b[1]", "c.d"]),
    ({"x": np.array([1.0, -np.inf]), "y": "nan", "z": None, "w": 3}, ["x[1]"]),
    ([], []),
])
def test_nonfinite_paths_finds_every_nan_and_infinity(value, paths):
    assert nonfinite_paths(value) == paths


def test_no_condition_no_limitation():
    facts = Numerics.model_validate({"nonfinite": {"fairness": [], "privacy": []}, "saturation": {
        "n": 10, "certain_right": 0, "certain_wrong": 0, "max_abs_logit": 3.0, "dtype": "float64"}})
    assert numerical_limitations(facts) == []
