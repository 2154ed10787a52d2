"""xuxie (续写, "continue the writing"): train text generators on your own corpus and write with them."""

from .api import TextGenerator, __version__
from .decoding import GenerationConfig
from .errors import XuxieError
from .training import Callback, TrainConfig, Trainer

__all__ = ["Callback", "GenerationConfig", "TextGenerator", "TrainConfig", "Trainer", "XuxieError", "__version__"]
