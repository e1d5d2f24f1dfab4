"""Fitted scikit-learn classifiers converted exactly into torch modules, with the L2 term they were trained with.

``from_sklearn(estimator, n_samples=n)`` turns a fitted ``LogisticRegression`` or ``MLPClassifier`` into a
:class:`SklearnModel`: a torch ``module`` giving the same probabilities, the ``loss`` name and the per-parameter
``l2`` mapping for which ``mean loss + ½ Σ_k l2_k ‖θ_k‖²`` is the estimator's own training objective (divided
by a constant), so ``InfluenceEngine(sk.module, sk.loss, l2=sk.l2)`` audits the estimator as it was fitted:

- ``LogisticRegression`` (L2 penalty) minimises ``C·Σ_i ℓ_i + ½‖W‖²`` = ``C·n·(mean ℓ + ‖W‖²/(2Cn))``, the
  intercept unpenalised: ``l2 = {"weight": 1/(C·n)}``. With ``solver="liblinear"`` the intercept is a weight
  on a constant feature ``intercept_scaling = s`` and is penalised too: ``"bias": 1/(C·n·s²)``. ``C = inf``
  (no penalty) gives ``{}``.
- ``MLPClassifier`` minimises ``mean ℓ + (alpha/(2n))·Σ_layers ‖W‖²``, biases unpenalised:
  ``l2 = {"<i>.weight": alpha/n}`` for the ``nn.Sequential`` index i of each linear layer.

Binary problems get one logit (``loss="bce"``; the logit of ``classes_[1]``). Several classes get a softmax
(``loss="cross_entropy"``) whose output layer is :class:`SoftmaxLinear`: the intercept of class 0 is fixed at 0
and the others are stored relative to it. Softmax is unchanged by adding a constant to every logit and the
intercepts are unpenalised, so scikit-learn's K intercepts have a flat direction that would make the Hessian
singular; K − 1 relative intercepts give the same probabilities and the same minimum, without it.

scikit-learn does not store how many records a model was fitted on, so ``n_samples`` must be given (for
``MLPClassifier`` with ``early_stopping``: the records left after the validation split). Sample weights used at
fit time cannot be seen on the fitted estimator and are not reproduced: convert only models fitted without.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import InputError

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid, "identity": nn.Identity}


class SoftmaxLinear(nn.Module):
    """Logits ``x·Wᵀ + [0, b_1, …, b_{K−1}]``: a linear layer for K classes with class 0's intercept fixed at 0.

    ``weight`` is (K, d); ``bias`` is (K − 1,), the intercepts of classes 1..K−1 minus that of class 0.
    """

    def __init__(self, in_features: int, n_classes: int, *, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_classes, in_features))
        self.bias = nn.Parameter(torch.zeros(n_classes - 1)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = x @ self.weight.T
        if self.bias is None:
            return logits
        return logits + torch.cat([self.bias.new_zeros(1), self.bias])


@dataclass
class SklearnModel:
    """A converted estimator: ``module`` (torch, eval mode), ``loss``, ``l2`` (per parameter), ``classes_``.

    ``InfluenceEngine(m.module, m.loss, l2=m.l2).fit(X, m.encode(y))`` audits the estimator as fitted.
    """

    module: nn.Module
    loss: str
    l2: dict[str, float]
    classes_: np.ndarray
    n_samples: int
    kind: str

    def encode(self, y) -> np.ndarray:
        """Class labels → their positions in ``classes_`` (the targets ``loss`` expects)."""
        y = np.asarray(y)
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        bad = self.classes_[index] != y
        if bad.any():
            raise InputError(f"y has labels {sorted(set(y[bad].tolist()))[:5]} that are not among the estimator's "
                             f"classes {self.classes_.tolist()}: pass labels the estimator was fitted on")
        return index.astype(np.int64)

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of ``classes_`` (n, K), as the estimator's ``predict_proba`` computes them."""
        first = next(self.module.parameters())
        with torch.no_grad():
            out = self.module(torch.as_tensor(np.asarray(X), dtype=first.dtype))
        if self.loss == "bce":
            p = torch.sigmoid(out.reshape(-1))
            return torch.stack([1 - p, p], dim=1).numpy()
        return torch.softmax(out, dim=1).numpy()


def from_sklearn(estimator, *, n_samples: int | None = None, dtype: torch.dtype = torch.float64) -> SklearnModel:
    """Convert a fitted ``LogisticRegression`` or ``MLPClassifier`` (see the module docstring for the formulas).

    ``n_samples``: how many records the estimator was fitted on (required; scikit-learn does not store it).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if dtype not in (torch.float32, torch.float64):
        raise InputError(f"dtype={dtype!r} is not allowed: use torch.float32 or torch.float64")
    if not isinstance(estimator, (LogisticRegression, MLPClassifier)):
        raise InputError(f"from_sklearn converts LogisticRegression and MLPClassifier, got "
                         f"{type(estimator).__name__}: train one of those, or wrap your model in a torch nn.Module")
    fitted = "coef_" if isinstance(estimator, LogisticRegression) else "coefs_"
    if not hasattr(estimator, fitted):
        raise InputError(f"this {type(estimator).__name__} is not fitted yet: call estimator.fit(X, y) first")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise InputError(f"n_samples={n_samples!r} is not allowed: give the number of training records the estimator "
                         "was fitted on (a positive integer; scikit-learn does not store it), e.g. "
                         "from_sklearn(estimator, n_samples=len(X_train))")
    if isinstance(estimator, LogisticRegression):
        module, loss, l2 = _logistic(estimator, int(n_samples))
    else:
        module, loss, l2 = _mlp(estimator, int(n_samples))
    return SklearnModel(module=module.to(dtype).eval(), loss=loss, l2=l2, classes_=np.asarray(estimator.classes_),
                        n_samples=int(n_samples), kind=type(estimator).__name__)


def _penalty(est) -> str | None:
    """The penalty the estimator applied: ``"l2"``, ``"l1"``, ``"elasticnet"`` or None, across versions."""
    penalty = getattr(est, "penalty", "l2")
    l1_ratio = getattr(est, "l1_ratio", None)
    if penalty == "deprecated":                       # scikit-learn ≥ 1.8: l1_ratio and C say it
        penalty = "l2" if l1_ratio in (0, None) else "l1" if l1_ratio == 1 else "elasticnet"
    elif penalty == "elasticnet" and l1_ratio == 0:
        penalty = "l2"
    if penalty in (None, "none") or not np.isfinite(est.C):
        return None
    return penalty


def _logistic(est, n: int) -> tuple[nn.Module, str, dict[str, float]]:
    penalty = _penalty(est)
    if penalty in ("l1", "elasticnet"):
        l2 = "l1_ratio=0" if getattr(est, "penalty", None) == "deprecated" else "penalty='l2'"  # ≥ 1.8 / older
        raise InputError(f"LogisticRegression with an {penalty} penalty cannot be converted: influence needs a "
                         f"twice-differentiable objective; refit with the L2 penalty ({l2})")
    if est.class_weight is not None:
        raise InputError(f"LogisticRegression with class_weight={est.class_weight!r} cannot be converted: the "
                         "weighted objective is not the mean loss influence assumes; refit with class_weight=None")
    classes = np.asarray(est.classes_)
    multi_class = getattr(est, "multi_class", "auto")
    binary = len(classes) == 2
    if not binary and (multi_class == "ovr" or (multi_class == "auto" and est.solver == "liblinear")):
        raise InputError("a one-vs-rest LogisticRegression cannot be converted: it is K separate binary models, "
                         "not one softmax objective; refit with the multinomial loss (the default of lbfgs)")
    if binary and multi_class == "multinomial":
        raise InputError("a binary LogisticRegression fitted with multi_class='multinomial' cannot be converted: "
                         "refit with the default (binomial) loss")
    coef = torch.as_tensor(np.asarray(est.coef_, dtype=np.float64))
    intercept = torch.as_tensor(np.asarray(est.intercept_, dtype=np.float64))
    d = coef.shape[1]
    if binary:
        module = nn.Linear(d, 1, bias=est.fit_intercept).double()
    else:
        module = SoftmaxLinear(d, len(classes), bias=est.fit_intercept).double()
    with torch.no_grad():
        module.weight.copy_(coef)
        if est.fit_intercept:
            module.bias.copy_(intercept if binary else intercept[1:] - intercept[0])
    l2: dict[str, float] = {}
    if penalty is not None:
        l2["weight"] = 1.0 / (est.C * n)
        if est.solver == "liblinear" and est.fit_intercept:
            l2["bias"] = 1.0 / (est.C * n * float(est.intercept_scaling) ** 2)
    return module, ("bce" if binary else "cross_entropy"), l2


def _mlp(est, n: int) -> tuple[nn.Module, str, dict[str, float]]:
    if est.activation not in _ACTIVATIONS:
        raise InputError(f"MLPClassifier activation={est.activation!r} is not known: use one of "
                         f"{sorted(_ACTIVATIONS)}")
    out = est.out_activation_
    if out not in ("logistic", "softmax") or (out == "logistic" and est.n_outputs_ != 1):
        raise InputError(f"MLPClassifier with output {out!r} and {est.n_outputs_} outputs (multi-label) cannot be "
                         "converted: only single-label classification (one logistic or one softmax output) is")
    coefs, intercepts = est.coefs_, est.intercepts_
    layers: list[nn.Module] = []
    l2: dict[str, float] = {}
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        W = torch.as_tensor(np.asarray(W, dtype=np.float64)).T          # scikit-learn stores (in, out)
        b = torch.as_tensor(np.asarray(b, dtype=np.float64))
        last = i == len(coefs) - 1
        softmax = last and out == "softmax"
        layer = (SoftmaxLinear if softmax else nn.Linear)(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            layer.weight.copy_(W)
            layer.bias.copy_(b[1:] - b[0] if isinstance(layer, SoftmaxLinear) else b)
        l2[f"{len(layers)}.weight"] = float(est.alpha) / n
        layers.append(layer)
        if not last:
            layers.append(_ACTIVATIONS[est.activation]())
    return nn.Sequential(*layers), ("bce" if out == "logistic" else "cross_entropy"), l2
