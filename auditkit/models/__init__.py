"""Model adapters: building the audited model from user code and loading its weights safely."""

from .loading import build_model, import_object, load_state_dict

__all__ = ["build_model", "import_object", "load_state_dict"]
