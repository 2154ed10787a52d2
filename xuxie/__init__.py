"""xuxie (续写, "continue the writing"): train text generators on your own corpus and write with them."""

from .threads import configure_openmp, set_threads

configure_openmp()  # before anything imports torch: OpenMP reads its settings once, at load

from .api import TextGenerator, __version__  # noqa: E402
from .decoding import DecodingSetup, GenerationConfig, LogitsProcessor  # noqa: E402
from .errors import XuxieError, XuxieWarning  # noqa: E402
from .training import Callback, TrainConfig, Trainer  # noqa: E402

__all__ = ["Callback", "DecodingSetup", "GenerationConfig", "LogitsProcessor", "TextGenerator", "TrainConfig", "Trainer",
           "XuxieError", "XuxieWarning", "__version__", "set_threads"]
