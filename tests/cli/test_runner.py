"""Runner pieces on the heart-disease example: automatic damping, stability settings, policy budget."""

from __future__ import annotations

import pytest
import torch
import yaml
from conftest import ROOT

from auditkit.config import parse_config
from auditkit.errors import InputError
from auditkit.inputs import load_data, load_model
from auditkit.report.document import Section
from auditkit.report.sections import methodology
from auditkit.runner import _solver_used, alternative_engines, check_config, fit_engine, plugin_options

EXAMPLE = ROOT / "examples/heart_disease"


def config_with(edit=None):
    doc = yaml.safe_load((EXAMPLE / "audit.yaml").read_text())
    if edit:
        edit(doc)
    return parse_config(doc, base_dir=EXAMPLE)


@pytest.fixture(scope="module")
def loaded():
    config = config_with()
    splits = load_data(config).splits
    X, y = torch.tensor(splits["train"].X), torch.tensor(splits["train"].y)
    return splits, X, y


def test_auto_damping_rescues_a_singular_hessian_and_says_so(loaded):
    splits, X, y = loaded
    # without the L2 term the one-hot columns (every level of a category, plus the bias) are collinear
    config = config_with(lambda d: d["model"].update(l2=0.0))
    engine, note = fit_engine(load_model(config, splits), config, X, y)
    assert engine.damping > 0 and "damping of" in note and "not at a strict minimum" in note
    fixed = config_with(lambda d: (d["model"].update(l2=0.0), d["influence"].update(damping=0.0)))
    with pytest.raises(InputError, match=r"^influence.damping: the Hessian is singular .*; or set 'damping: auto'$"):
        fit_engine(load_model(fixed, splits), fixed, X, y)


def test_stability_settings_scale_the_ridge_and_swap_the_solver(loaded):
    splits, X, y = loaded
    config = config_with()
    model = load_model(config, splits)
    engine, note = fit_engine(model, config, X, y)
    assert note is None and engine.damping == 0.0
    engines, settings = alternative_engines(model, config, engine, X, y)
    assert [(s["label"], s["method"], s["l2"]) for s in settings] == [
        ("ridge ×0.1", "exact", pytest.approx(0.001)), ("ridge ×10", "exact", pytest.approx(0.1)),
        ("solver ekfac", "ekfac", 0.01)]
    assert engines["ridge ×10"].l2 == pytest.approx(0.1)


def test_the_policy_sets_the_flag_budget_and_a_conflict_is_refused():
    config = config_with()
    policy = check_config(config)
    assert policy.flag_budget == 0.01 and plugin_options(config, policy)["privacy"]["budget"] == 0.01
    clash = config_with(lambda d: d["audits"]["privacy"].update(budget=0.05))
    with pytest.raises(InputError, match=r"^audits.privacy.budget 0.05 differs from the flag_budget 0.01 of policy "):
        check_config(clash)


def test_privacy_without_non_members_is_refused_before_running():
    config = config_with(lambda d: d["data"]["split"].update(holdout=0.0))
    with pytest.raises(InputError, match=r"^audits.privacy needs non-members: give data.holdout"):
        check_config(config)


def test_a_policy_metric_without_its_plugin_is_refused_before_running():
    config = config_with(lambda d: d["audits"].pop("privacy"))
    with pytest.raises(InputError, match=r"needs privacy, which this audit does not run"):
        check_config(config)


def test_weights_are_optional_and_the_parameters_are_hashed(loaded):
    from auditkit.models.loading import parameters_sha256
    splits, _, _ = loaded
    with_weights = load_model(config_with(), splits)
    without = load_model(config_with(lambda d: d["model"].pop("weights")), splits)   # the builder's own state
    assert parameters_sha256(with_weights) != parameters_sha256(without)
    assert parameters_sha256(with_weights) == parameters_sha256(load_model(config_with(), splits))


def test_solver_and_its_options_come_from_the_configuration(loaded):
    splits, X, y = loaded
    config = config_with(lambda d: d["influence"].update(method="arnoldi", options={"rank": 20}))
    engine, _ = fit_engine(load_model(config, splits), config, X, y)
    assert engine.method == "arnoldi" and engine.summary()["solver"]["rank"] == 20
    bad = config_with(lambda d: d["influence"].update(method="arnoldi", options={"rnk": 3}))
    with pytest.raises(InputError, match=r"^influence: option\(s\) \['rnk'\] are not known to method='arnoldi'"):
        fit_engine(load_model(bad, splits), bad, X, y)


def test_the_default_second_solver_is_ekfac_for_linear_layers_else_cg():
    from auditkit.runner import second_solver_for
    linear = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    assert second_solver_for(linear, "exact") == "ekfac"
    assert second_solver_for(linear, "ekfac") == "cg"
    with_norm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    assert second_solver_for(with_norm, "exact") == "cg"
    assert second_solver_for(with_norm, "cg") == "exact"


def test_the_gradient_cache_is_used_when_configured(loaded, tmp_path):
    splits, X, y = loaded
    config = config_with(lambda d: d["influence"].update(cache=str(tmp_path / "cache")))
    engine, _ = fit_engine(load_model(config, splits), config, X, y)
    first = engine.influence(X[:3], y[:3])
    assert any((tmp_path / "cache").rglob("*.npy"))                 # gradients written on the first pass
    again, _ = fit_engine(load_model(config, splits), config, X, y)
    assert abs(again.influence(X[:3], y[:3]) - first).max() < 1e-12


def test_the_solver_auto_chose_and_its_measured_residual_reach_the_report(loaded):
    splits, X, y = loaded
    config = config_with(lambda d: d["influence"].update(method="auto", options={"max_exact_params": 10}))
    engine, _ = fit_engine(load_model(config, splits), config, X, y)
    engine.influence(X[:5], y[:5])
    used = _solver_used(engine)
    assert used == {"method_used": "pcg", "method_reason": "pcg: the dense Hessian is too large (p = 80 > "
                    "max_exact_params = 10); every layer is supported by EK-FAC", "residual": used["residual"],
                    "stopping_rule": "relative residual ‖b − Hx‖/‖b‖ ≤ tol for every right-hand side", "tol": 1e-8}
    assert 0 < used["residual"] <= 1e-8
    section = Section(1, "methodology", "Methodology")
    methodology(section, {"influence": {"method": "auto", **used}})
    rows = [[c.text for c in r] for b in section.blocks if hasattr(b, "rows") for r in b.rows]
    assert ["Solver chosen", "pcg", used["method_reason"] + "."] in rows
    assert ["Solver residual", f"{used['residual']:.1e}", "Largest relative residual ‖b − Hx‖/‖b‖ measured after "
            "the iterative solves; stopping rule: relative residual ‖b − Hx‖/‖b‖ ≤ tol for every right-hand side "
            "(tol = 1e-08)."] in rows
    exact = config_with()
    assert _solver_used(fit_engine(load_model(exact, splits), exact, X, y)[0]) == {
        "method_used": "exact", "method_reason": None, "residual": None, "stopping_rule": None, "tol": None}
