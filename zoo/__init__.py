"""zoo: a PyTorch Lightning model zoo of the classic deep-learning curriculum."""
from zoo.registry import create_model, list_models, model_card, register_model

from zoo import conf as _conf  # noqa: F401  (registers the config resolvers)

__all__ = ["create_model", "list_models", "model_card", "register_model"]
__version__ = "0.1.0"
