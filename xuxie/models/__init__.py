"""Model families behind one interface (see :class:`LanguageModel`)."""

from .base import REGISTRY, LanguageModel, build_model, config_fields, model_from_config, register
from .rnn import RNNConfig, RNNLanguageModel

ARCHITECTURES = tuple(REGISTRY)

__all__ = [
    "ARCHITECTURES", "REGISTRY", "LanguageModel", "RNNConfig", "RNNLanguageModel",
    "build_model", "config_fields", "model_from_config", "register",
]
