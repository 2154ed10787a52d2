"""Model families behind one interface (see :class:`LanguageModel`)."""

from .attention_rnn import AttentionRNNConfig, AttentionRNNLanguageModel
from .base import REGISTRY, LanguageModel, ModelConfig, build_model, config_fields, is_encoder_decoder, model_from_config, register
from .rnn import RNNConfig, RNNLanguageModel
from .seq2seq import Seq2SeqConfig, Seq2SeqModel, Seq2SeqState
from .transformer import PRESETS, KVCache, TransformerConfig, TransformerLanguageModel

ARCHITECTURES = tuple(REGISTRY)

__all__ = [
    "ARCHITECTURES", "AttentionRNNConfig", "AttentionRNNLanguageModel", "PRESETS", "REGISTRY", "KVCache", "LanguageModel", "RNNConfig",
    "RNNLanguageModel",
    "Seq2SeqConfig", "Seq2SeqModel", "Seq2SeqState",
    "TransformerConfig", "TransformerLanguageModel",
    "ModelConfig", "build_model", "config_fields", "is_encoder_decoder", "model_from_config", "register",
]
