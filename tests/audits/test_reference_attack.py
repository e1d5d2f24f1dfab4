"""The reference-model membership attacks on real data (UCI Heart Disease): planted canaries are found on an
MLP (offline and online LiRA), non-members score near 0 and as widely as members, same seed gives the same
scores; reference models are cold-started exactly as a fresh build, their number follows the time budget, and
processes give the same scores as one process."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import auditkit as ak
from auditkit.audits.base import AuditContext, warm_start_trainer
from auditkit.audits.privacy.reference import (
    MIN_MODELS,
    PHI_MAX,
    ReferenceScores,
    cold_start,
    logit_confidence,
    monotone_ratio,
    reference_attack,
)
from auditkit.data import AuditData
from auditkit.errors import InputError

N_CANARIES = 5


def audit_data(name: str, X: np.ndarray, y: np.ndarray) -> AuditData:
    n = len(y)
    return AuditData(name=name, frame=pd.DataFrame(index=range(n)), X=X, y=y, classes=[0, 1], favourable_index=1,
                     ids=np.array([f"{name}-{i}" for i in range(n)]), groups=pd.DataFrame(index=range(n)))


def heart_splits(heart, X=None, y=None) -> dict[str, AuditData]:
    """Training records (optionally replaced), and the test split cut in two: test and holdout."""
    Xt, yt = heart["Xt"].numpy(), heart["yt"].numpy()
    half = len(yt) // 2
    X, y = (heart["X"].numpy(), heart["y"].numpy()) if X is None else (X, y)
    return {"train": audit_data("train", X, y),
            "test": audit_data("test", Xt[:half], yt[:half]),
            "holdout": audit_data("holdout", Xt[half:], yt[half:])}


def context(model, splits, *, l2: float, train_fn=True) -> AuditContext:
    X, y = torch.tensor(splits["train"].X), torch.tensor(splits["train"].y)
    assert ak.fit_model(model, X, y, l2=l2)["converged"]
    trainer = warm_start_trainer(l2=l2, tol=1e-6) if train_fn else None
    return AuditContext(model, ak.InfluenceEngine(model, l2=l2), splits, l2=l2, train_fn=trainer, seed=0)


def with_canaries(heart) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5 training records pushed +8 standard deviations on 3 features each and given the unlikely label.

    The features are those a logistic regression on the clean data weighs most (per standard deviation),
    dealt out so that no two canaries share one: even canaries move along features that point to class 1
    and are labelled 0, odd canaries the reverse. So each canary lies far out of range, alone, with a
    label no model that has not seen it would predict.
    """
    X, y = heart["X"].numpy().copy(), heart["y"].numpy().copy()
    clean = torch.nn.Linear(X.shape[1], 2).double()
    assert ak.fit_model(clean, heart["X"], heart["y"], l2=1e-2)["converged"]
    sd = X.std(axis=0)
    weight = (clean.weight[1] - clean.weight[0]).detach().numpy() * sd
    toward_1, toward_0 = list(np.argsort(-weight)), list(np.argsort(weight))
    canaries = np.random.default_rng(0).choice(len(y), N_CANARIES, replace=False)
    for i, c in enumerate(canaries):
        features = [toward_1[i // 2 + 3 * r] for r in range(3)] if i % 2 == 0 else \
                   [toward_0[i // 2 + 2 * r] for r in range(3)]
        X[c, features] += 8 * sd[features]
        y[c] = 0 if i % 2 == 0 else 1
    with torch.no_grad():
        p_label = torch.softmax(clean(torch.tensor(X[canaries])), dim=1)[np.arange(N_CANARIES), y[canaries]]
    assert (p_label < 0.01).all()                              # the label is unlikely to a clean model
    return X, y, canaries


@pytest.fixture(scope="module")
def mlp_canaries(heart):
    X, y, canaries = with_canaries(heart)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 32), torch.nn.Tanh(), torch.nn.Linear(32, 2)).double()
    ctx = context(model, heart_splits(heart, X, y), l2=1e-3)
    return ctx, reference_attack(ctx, n_models=4, seed=0), canaries


@pytest.fixture(scope="module")
def logistic(heart):
    torch.manual_seed(0)
    ctx = context(torch.nn.Linear(heart["X"].shape[1], 2).double(), heart_splits(heart), l2=1e-2)
    return ctx, reference_attack(ctx, n_models=4, seed=0, splits=("train", "holdout", "test"))


def test_canaries_memorised_by_an_mlp_rank_in_the_top_5_percent(mlp_canaries):
    ctx, ref, canaries = mlp_canaries
    z = ref.scores["train"]
    rank = np.argsort(np.argsort(-z))                          # 0 = most member-like
    assert (rank[canaries] < 0.05 * len(z)).all(), rank[canaries]
    # the target fits each canary's unlikely label; the reference models that never saw it do not
    assert (ref.phi_target["train"][canaries] > 2).all()
    assert (ref.mu_out["train"][canaries] < -2).all()
    # and no non-member looks as memorised as the least exposed canary
    assert ref.scores["holdout"].max() < z[canaries].min()


def test_shapes_and_bookkeeping(mlp_canaries):
    ctx, ref, _ = mlp_canaries
    assert isinstance(ref, ReferenceScores) and ref.n_models == 4 and ref.seed == 0
    assert set(ref.scores) == set(ref.phi_target) == set(ref.mu_out) == {"train", "holdout"}
    n, m = ctx.train.n, ctx.splits["holdout"].n
    assert ref.scores["train"].shape == (n,) and ref.scores["holdout"].shape == (m,)
    # complementary halves: every training record is in exactly 2 of the 4 models, out of the other 2
    assert ref.in_model.shape == (4, n)
    assert (ref.in_model.sum(axis=0) == 2).all() and (ref.in_model[0] ^ ref.in_model[1]).all()
    assert (ref.n_out["train"] == 2).all() and (ref.n_out["holdout"] == 2).all()
    assert abs(ref.in_model[0].sum() - n / 2) <= 1
    z = (ref.phi_target["train"] - ref.mu_out["train"]) / ref.sigma
    np.testing.assert_array_equal(ref.scores["train"], z)
    assert ref.sigma > 0


def test_non_members_centred_near_zero_on_logistic_regression(logistic):
    _, ref = logistic
    for split in ("holdout", "test"):
        z = ref.scores[split]
        assert abs(z.mean()) < 0.25, (split, z.mean())
        # non-members spread like members (OUT models drawn alike), so a threshold set on them holds for members
        assert 0.6 < z.std() / ref.scores["train"].std() < 1.4, (split, z.std(), ref.scores["train"].std())


def test_same_seed_same_scores_other_seed_other_halves(heart, logistic):
    ctx, ref = logistic
    again = reference_attack(ctx, n_models=4, seed=0, splits=("train", "holdout", "test"))
    for split in ref.scores:
        np.testing.assert_array_equal(again.scores[split], ref.scores[split])
    assert again.sigma == ref.sigma
    np.testing.assert_array_equal(again.in_model, ref.in_model)
    other = reference_attack(ctx, n_models=4, seed=1, splits=("holdout",))
    assert set(other.scores) == {"holdout"}
    assert not np.array_equal(other.in_model, ref.in_model)


def test_odd_number_of_models_leaves_every_record_out_of_one(logistic):
    ctx, _ = logistic
    ref = reference_attack(ctx, n_models=3, seed=0, splits=("train",))
    assert (ref.n_out["train"] >= 1).all() and set(np.unique(ref.n_out["train"])) == {1, 2}
    assert np.isfinite(ref.scores["train"]).all()


def test_logit_confidence_is_the_log_odds_of_the_true_label():
    outputs = torch.tensor([[0.0, 2.0, -1.0], [3.0, 0.0, 0.0], [0.0, 80.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1, 2, 1])
    p = torch.softmax(outputs, dim=1)[torch.arange(3), y].numpy()
    phi = logit_confidence(outputs, y, "cross_entropy")
    np.testing.assert_allclose(phi[:2], np.log(p[:2] / (1 - p[:2])), rtol=1e-12)
    assert phi[2] == PHI_MAX                                   # p clipped to 1 − 1e-12
    np.testing.assert_allclose(logit_confidence(torch.tensor([1.5, -2.0]), torch.tensor([1.0, 1.0]), "bce"),
                               [1.5, -2.0])
    np.testing.assert_allclose(logit_confidence(torch.tensor([[1.5]]), torch.tensor([0.0]), "bce"), [-1.5])


def raises(message):
    return pytest.raises(InputError, match="^" + re.escape(message) + "$")


def test_clear_errors(heart, logistic):
    ctx, _ = logistic
    no_trainer = AuditContext(ctx.model, ctx.engine, ctx.splits, l2=ctx.l2, train_fn=None)
    with raises("the reference-model attack needs a training function: pass train_fn to the AuditContext "
                "(e.g. warm_start_trainer(loss=..., l2=...) from auditkit.audits.base)"):
        reference_attack(no_trainer)
    with raises("n_models=2 is not allowed: it must be an integer ≥ 3 (4 or more, even, recommended) so that every "
                "training record is out of some reference models and their spread can be estimated"):
        reference_attack(ctx, n_models=2)
    with raises("splits=['train', 'validation'] is not allowed: choose one or more of ['holdout', 'test', 'train']"):
        reference_attack(ctx, splits=("train", "validation"))
    with raises("seed=0.5 is not allowed: it must be an integer"):
        reference_attack(ctx, seed=0.5)


def test_cold_start_is_the_builders_initialisation_under_the_seed(mlp_canaries):
    ctx, _, _ = mlp_canaries
    d = ctx.train.X.shape[1]

    def build(dtype=None):
        return torch.nn.Sequential(torch.nn.Linear(d, 32, dtype=dtype), torch.nn.Tanh(),
                                   torch.nn.Linear(32, 2, dtype=dtype))

    def seeded(make):
        torch.manual_seed(int(np.random.SeedSequence([0, 3]).generate_state(1)[0]))
        return make()

    # with the builder: exactly what it builds under the seed (float32 draws, then the audited dtype)
    by_builder = cold_start(ctx.model, (0, 3), build=build)
    # without: every layer's reset_parameters, i.e. the layers as built directly in the model's dtype
    by_reset = cold_start(ctx.model, (0, 3))
    for net, fresh in ((by_builder, seeded(build).double()), (by_reset, seeded(lambda: build(torch.float64)))):
        for a, b, trained_ in zip(net.parameters(), fresh.parameters(), ctx.model.parameters(), strict=True):
            assert a.dtype == torch.float64
            torch.testing.assert_close(a, b, rtol=0, atol=0)
            assert not torch.equal(a, trained_)              # none of the audited weights survive


def test_online_lira_finds_the_mlp_canaries_and_stays_calibrated(mlp_canaries):
    ctx, _, canaries = mlp_canaries
    ref = reference_attack(ctx, n_models=8, seed=0, attack="online")
    assert ref.attack == "online" and ref.run["attack"] == "online" and ref.n_models == 8
    assert ref.run["initialisation"] == "cold (reset_parameters)" and ref.run["pool"] == ["train", "holdout"]
    # every record, member or not, is in 4 of the 8 models (complementary halves of the pool)
    assert (ref.in_model.sum(axis=0) == 4).all() and (ref.n_out["holdout"] == 4).all()
    lam = ref.scores["train"]
    rank = np.argsort(np.argsort(-lam))
    assert (rank[canaries] < 0.05 * len(lam)).all(), rank[canaries]
    # IN models fit each canary's unlikely label, OUT models do not
    assert (ref.mu_in["train"][canaries] > 0).all() and (ref.mu_out["train"][canaries] < -2).all()
    assert ref.scores["holdout"].max() < lam[canaries].min()
    # the likelihood ratio as defined, with pooled variances, at φ clipped to the ratio's rising side
    x, mi, mo, s_in, s_out = ref.phi_target["train"], ref.mu_in["train"], ref.mu_out["train"], ref.sigma_in, ref.sigma
    assert ref.variance == "pooled" and ref.run["variance"] == "pooled"
    turn = (mi / s_in ** 2 - mo / s_out ** 2) / (1 / s_in ** 2 - 1 / s_out ** 2)
    x = np.minimum(x, turn) if s_in < s_out else np.maximum(x, turn)
    expected = -0.5 * ((x - mi) / s_in) ** 2 - np.log(s_in) + 0.5 * ((x - mo) / s_out) ** 2 + np.log(s_out)
    np.testing.assert_allclose(lam, expected, rtol=1e-12)


@pytest.mark.parametrize(("s_in", "s_out"), [(1.0, 3.0), (3.0, 1.0), (2.0, 2.0)])
def test_the_likelihood_ratio_never_falls_as_the_target_grows_more_confident(s_in, s_out):
    """monotone_ratio is LiRA's Gaussian log-likelihood ratio (scipy's normal densities) wherever that rises with φ,
    and flat where it would fall: a target more confident than its IN models is never scored as less exposed."""
    x = np.linspace(-30, 30, 2001)
    mu_in, mu_out = 6.0, -5.0
    got = monotone_ratio(x, mu_in, s_in, mu_out, s_out)
    plain = stats.norm.logpdf(x, mu_in, s_in) - stats.norm.logpdf(x, mu_out, s_out)
    assert (np.diff(got) >= -1e-12).all()                               # non-decreasing in φ_target
    up = np.gradient(plain, x) >= 0                                      # where the plain ratio rises
    np.testing.assert_allclose(got[up], plain[up], rtol=1e-10, atol=1e-10)
    if s_in != s_out:                                                    # where it falls: flat, at its turning point
        turn = (mu_in / s_in ** 2 - mu_out / s_out ** 2) / (1 / s_in ** 2 - 1 / s_out ** 2)
        at_turn = stats.norm.logpdf(turn, mu_in, s_in) - stats.norm.logpdf(turn, mu_out, s_out)
        assert (~up).sum() > 100
        np.testing.assert_allclose(got[~up], at_turn, rtol=1e-10)
        assert at_turn == pytest.approx(plain.max() if s_in < s_out else plain.min(), abs=1e-3)
    else:
        assert up.all()


def test_model_count_from_the_budget_and_processes_equal_one_process(logistic):
    ctx, _ = logistic
    small = reference_attack(ctx, n_models=None, seed=0, budget_s=1e-6, workers=2)
    assert small.n_models == MIN_MODELS and small.attack == "offline"          # below 8 models: offline
    assert small.run["chosen_from_budget"] and small.run["budget_s"] == 1e-6
    assert small.run["early_stopping_tolerance"] == 1e-5 and small.run["converged"] == MIN_MODELS
    one = reference_attack(ctx, n_models=4, seed=0, workers=1)
    assert one.run["workers"] == 1 and small.run["workers"] == 2
    np.testing.assert_array_equal(one.scores["train"], small.scores["train"])
    np.testing.assert_array_equal(one.scores["holdout"], small.scores["holdout"])


def test_a_model_that_cannot_be_cold_started_is_refused(logistic):
    ctx, _ = logistic

    class Scaled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.scale = inner, torch.nn.Parameter(torch.ones(1, dtype=torch.float64))

        def forward(self, x):
            return self.inner(x) * self.scale

    odd = AuditContext(Scaled(ctx.model), ctx.engine, ctx.splits, l2=ctx.l2, train_fn=ctx.train_fn)
    with raises("the reference models cannot be cold-started: module(s) ['Scaled'] hold parameters but have no "
                "reset_parameters(); give them one (re-initialise as the builder does), or use "
                "initialisation='warm'"):
        reference_attack(odd)
