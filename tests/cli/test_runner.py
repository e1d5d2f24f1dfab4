"""Runner pieces on the heart-disease example: automatic damping, stability settings, policy budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT

import auditkit as ak
from auditkit.assemble import solver_used
from auditkit.config import parse_config
from auditkit.engine_factory import EngineFactory, EngineSettings, second_solver_for
from auditkit.errors import InputError
from auditkit.inputs import load_data, load_model
from auditkit.report.document import Section
from auditkit.report.sections import methodology
from auditkit.rundoc import load_run
from auditkit.runner import check_config, engine_settings, plugin_options
from auditkit.seeds import Seeds

EXAMPLE = ROOT / "examples/heart_disease"
PREVIOUS_RUN = ROOT / "tests/rundoc/data/run_heart_previous.json"


def config_with(edit=None):
    doc = yaml.safe_load((EXAMPLE / "audit.yaml").read_text())
    if edit:
        edit(doc)
    return parse_config(doc, base_dir=EXAMPLE)


def factory(model, config) -> EngineFactory:
    return EngineFactory(model, engine_settings(config, Seeds(config.seed)))


def fit_engine(model, config, X, y):
    """The audit's engine and the factory's record of how it was fitted (``influence.fitting``)."""
    made = factory(model, config)
    return made.fit(X, y), made.fitting()


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
    engine, fitting = fit_engine(load_model(config, splits), config, X, y)
    assert engine.damping > 0 and fitting["damping_source"] == "auto"
    assert fitting["steps"] == ["exact solver, no damping: Hessian not positive definite",
                                f"refit with damping {engine.damping:.2g}"]
    fixed = config_with(lambda d: (d["model"].update(l2=0.0), d["influence"].update(damping=0.0)))
    with pytest.raises(InputError, match=r"^influence.damping: the Hessian is singular .*; or set 'damping: auto'$"):
        fit_engine(load_model(fixed, splits), fixed, X, y)


def test_stability_settings_scale_the_ridge_and_swap_the_solver(loaded):
    splits, X, y = loaded
    config = config_with()
    model = load_model(config, splits)
    made = factory(model, config)
    engine = made.fit(X, y)
    assert made.fitting() == {"damping_source": "none", "dtype_requested": "float64", "dtype_used": "float64",
                              "float32_overflows": 0,
                              "steps": ["exact solver fitted without damping: the Hessian is positive definite"]}
    assert engine.damping == 0.0
    engines, settings = made.alternatives(engine, X, y)
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
    with pytest.raises(InputError) as refused:
        config_with(lambda d: d["influence"].update(method="arnoldi", options={"rnk": 3}))
    assert str(refused.value) == ("configuration: influence.options: unknown option 'rnk' of method 'arnoldi': "
                                  "allowed options are rank, iterations, complement, seed, ritz_tol, max_rank "
                                  "(see docs/methods.md)")
    with pytest.raises(InputError) as refused:
        config_with(lambda d: d["influence"].update(method="cg", options={"max_iter": "many"}))
    assert str(refused.value) == ("configuration: influence.options: option 'max_iter' of method 'cg': Input should "
                                  "be a valid integer, unable to parse string as an integer (got 'many')")


def test_the_solver_seed_derives_from_the_run_seed_unless_given(loaded):
    """LiSSA's batches and power iteration are seeded from the run's seed; an explicit option wins."""
    splits, X, y = loaded
    seeds = Seeds(7)
    config = config_with(lambda d: (d.update(seed=7), d["influence"].update(method="lissa", options={"depth": 5})))
    assert engine_settings(config, seeds).solver_seed == seeds.used["solver"] != 0
    engine = EngineFactory(load_model(config, splits), engine_settings(config, seeds)).make(0.0)
    assert engine.solver.seed == seeds.used["solver"]
    given = config_with(lambda d: d["influence"].update(method="lissa", options={"seed": 3}))
    explicit = Seeds(0)
    assert engine_settings(given, explicit).solver_seed == 3 and explicit.used == {"solver": 3}


def test_the_default_second_solver_is_ekfac_for_linear_layers_else_cg_and_none_beside_exact_on_networks():
    """Beside exact, EK-FAC only where it agrees with exact (a binary logistic regression); on a network with
    hidden layers or a multiclass model exact is the reference and a second solver's row would measure the
    approximation's error. Beside EK-FAC or K-FAC, exact while auto would pick it (p ≤ 12,000), else the other
    Kronecker method: CG's self-influence of every record would take hours."""
    binary = torch.nn.Linear(3, 2)
    assert second_solver_for(binary, "exact") == "ekfac" and second_solver_for(binary, "ekfac") == "exact"
    assert second_solver_for(torch.nn.Linear(3, 10), "exact") == "none"
    linear = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    assert second_solver_for(linear, "exact") == "none"
    assert second_solver_for(linear, "ekfac") == "exact" and second_solver_for(linear, "pcg") == "ekfac"
    assert second_solver_for(linear, "kfac") == "exact"
    wide = torch.nn.Sequential(torch.nn.Linear(200, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2))   # p = 12,994
    assert second_solver_for(wide, "ekfac") == "kfac" and second_solver_for(wide, "kfac") == "ekfac"
    with_norm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    assert second_solver_for(with_norm, "exact") == "none"
    assert second_solver_for(with_norm, "cg") == "exact"


def test_the_stability_check_picks_the_second_solver_for_the_method_auto_used():
    """``method: auto`` on a small MLP uses exact, so the stability check compares only the ridges; beside
    ``ekfac`` on the same MLP the second solver is exact (fast here), not CG."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(80, 3, generator=gen, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    ak.fit_model(mlp, X, y, l2=0.01)
    cases = [(mlp, "auto", ["ridge ×10"]), (torch.nn.Linear(3, 2).double(), "auto", ["ridge ×10", "solver ekfac"]),
             (mlp, "ekfac", ["ridge ×10", "solver exact"])]
    for model, method, want in cases:
        settings = EngineSettings(loss="cross_entropy", l2=0.01, dtype="float64", method=method, damping=0.0,
                                  damping_factors=(10.0,))
        factory = EngineFactory(model, settings)
        engine = factory.make(0.0).fit(X, y)
        assert engine.summary()["method_used"] == ("exact" if method == "auto" else method)
        engines, settings = factory.alternatives(engine, X, y)
        assert [s["label"] for s in settings] == want == list(engines)
        assert all(np.isfinite(e.self_influence()).all() for e in engines.values())


def test_the_gradient_cache_is_used_when_configured(loaded, tmp_path):
    splits, X, y = loaded
    config = config_with(lambda d: d["influence"].update(cache=str(tmp_path / "cache")))
    engine, _ = fit_engine(load_model(config, splits), config, X, y)
    first = engine.influence(X[:3], y[:3])
    assert any((tmp_path / "cache").rglob("*.npy"))                 # gradients written on the first pass
    again, _ = fit_engine(load_model(config, splits), config, X, y)
    assert abs(again.influence(X[:3], y[:3]) - first).max() < 1e-12


def test_the_methods_and_their_options_come_from_the_solver_registry():
    """One list of methods: the configuration's choices and the options' types and help are the registry's."""
    from typing import get_args

    from auditkit.config import SOLVER_OPTIONS, InfluenceConfig, StabilityConfig
    from auditkit.influence.solvers import SOLVERS, solver_options

    assert get_args(InfluenceConfig.model_fields["method"].annotation) == tuple(SOLVERS)
    second = get_args(StabilityConfig.model_fields["second_solver"].annotation)
    assert second == ("auto", *(m for m in SOLVERS if m != "auto"), "none")
    for method in SOLVERS:
        fields = SOLVER_OPTIONS[method].model_fields
        assert [(name, f.default, f.description) for name, f in fields.items()] == [
            (o.name, o.default, o.help) for o in solver_options(method)]
        assert all(f.description for f in fields.values()), method          # every option has its help text
    assert SOLVER_OPTIONS["lissa"].model_validate({"depth": 5.0}).depth == 5   # typed: 5.0 is the integer 5
def test_the_solver_auto_chose_and_its_measured_residual_reach_the_report(loaded):
    splits, X, y = loaded
    config = config_with(lambda d: d["influence"].update(method="auto", options={"max_exact_params": 10}))
    engine, _ = fit_engine(load_model(config, splits), config, X, y)
    engine.influence(X[:5], y[:5])
    used = solver_used(engine)
    assert used == {"method_used": "pcg", "method_reason": "pcg: the dense Hessian is too large (p = 80 > "
                    "max_exact_params = 10); every layer is supported by EK-FAC", "residual": used["residual"],
                    "stopping_rule": "relative residual ‖b − Hx‖/‖b‖ ≤ tol for every right-hand side", "tol": 1e-8}
    assert 0 < used["residual"] <= 1e-8
    section = Section(1, "methodology", "Methodology")
    run = load_run(json.loads(PREVIOUS_RUN.read_text()))
    methodology(section, run.model_copy(update={"influence": run.influence.model_copy(
        update={"method": "auto", **used})}))
    rows = [[c.text for c in r] for b in section.blocks if hasattr(b, "rows") for r in b.rows]
    assert ["Solver chosen", "pcg", used["method_reason"] + "."] in rows
    assert ["Solver residual", f"{used['residual']:.1e}", "Largest relative residual ‖b − Hx‖/‖b‖ measured after "
            "the iterative solves; stopping rule: relative residual ‖b − Hx‖/‖b‖ ≤ tol for every right-hand side "
            "(tol = 1e-08)."] in rows
    exact = config_with()
    assert solver_used(fit_engine(load_model(exact, splits), exact, X, y)[0]) == {
        "method_used": "exact", "method_reason": None, "residual": None, "stopping_rule": None, "tol": None}


@pytest.mark.parametrize("method", ["exact", "auto"])
def test_damping_auto_refits_exact_from_the_refused_hessian_without_another_pass(monkeypatch, method):
    """``damping: auto`` on an MLP stopped short of a minimum (H not positive definite): the refit with the
    damping the refusal names reuses the dense Hessian the refused fit formed (one ``dense()`` in all) and
    equals a fresh fit with that damping; the damping is Lanczos' extreme eigenvalues' suggest_damping, equal
    to the one a full eigendecomposition gives."""
    from auditkit.influence.hessian import HessianOperator
    from auditkit.influence.solvers.base import suggest_damping
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(120, 3, generator=gen, dtype=torch.float64)
    y = ((X[:, 0] * X[:, 1] + 0.3 * torch.randn(120, generator=gen, dtype=torch.float64)) > 0).long()
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    ak.fit_model(mlp, X, y, l2=1e-4, max_iter=15)                  # stopped early: not at a minimum
    calls = []
    dense = HessianOperator.dense
    monkeypatch.setattr(HessianOperator, "dense", lambda self: calls.append(1) or dense(self))
    settings = EngineSettings(loss="cross_entropy", l2=1e-4, dtype="float64", method=method, damping="auto")
    factory = EngineFactory(mlp, settings)
    engine = factory.fit(X, y)
    assert len(calls) == 1 and factory.steps[-1].startswith("refit with damping")
    H = dense(engine.hessian_).double()
    evals = torch.linalg.eigvalsh(H - engine.damping * torch.eye(len(H), dtype=torch.float64))
    assert evals[0] < 0                                              # the case
    assert engine.damping == pytest.approx(suggest_damping(float(evals[0]), float(evals[-1])), rel=1e-6)
    fresh = ak.InfluenceEngine(mlp, "cross_entropy", l2=1e-4, method=method, damping=engine.damping).fit(X, y)
    np.testing.assert_allclose(engine.self_influence(leverage=True), fresh.self_influence(leverage=True), rtol=1e-8)
    np.testing.assert_allclose(engine.influence(X[:5], y[:5]), fresh.influence(X[:5], y[:5]), rtol=1e-8, atol=1e-14)


def test_damping_auto_adds_damping_when_the_first_suggestion_falls_short(monkeypatch):
    """If the damping suggested from Lanczos' Ritz values leaves H not positive definite (injected here: the
    first suggestion is 1e-12), the refit adds what the damped H's own refusal suggests, says so, and fits."""
    from auditkit.influence.solvers import exact
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(120, 3, generator=gen, dtype=torch.float64)
    y = ((X[:, 0] * X[:, 1] + 0.3 * torch.randn(120, generator=gen, dtype=torch.float64)) > 0).long()
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    ak.fit_model(mlp, X, y, l2=1e-4, max_iter=15)
    real, calls = exact.suggest_damping, []
    monkeypatch.setattr(exact, "suggest_damping", lambda lo, hi: calls.append(lo) or (1e-12 if len(calls) == 1
                                                                                      else real(lo, hi)))
    factory = EngineFactory(mlp, EngineSettings(loss="cross_entropy", l2=1e-4, dtype="float64", method="exact",
                                                damping="auto"))
    engine = factory.fit(X, y)
    assert len(calls) == 2 and factory.steps[-1].endswith("the first damping left the Hessian not positive definite")
    H = engine.hessian_.dense().double()
    assert float(torch.linalg.eigvalsh((H + H.T) / 2)[0]) > 0
    assert np.isfinite(engine.self_influence()).all()
