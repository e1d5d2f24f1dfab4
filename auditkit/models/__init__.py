"""Model adapters: building the audited model from user code, loading its weights safely, and converting
fitted scikit-learn classifiers into torch modules."""

from .loading import build_model, import_object, load_state_dict
from .sklearn import SklearnModel, SoftmaxLinear, from_sklearn

__all__ = ["build_model", "import_object", "load_state_dict", "from_sklearn", "SklearnModel", "SoftmaxLinear"]
