"""vtbench: a visual tokenizer zoo and evaluation benchmark."""

__version__ = "0.1.0"

from .tokenizers import (Tokenizer, TokenizerInfo, Tokens, WeightsUnavailable, list_tokenizers,  # noqa: E402
                         load_tokenizer, register_tokenizer)

__all__ = ["__version__", "Tokenizer", "TokenizerInfo", "Tokens", "WeightsUnavailable", "list_tokenizers",
           "load_tokenizer", "register_tokenizer"]
