"""vtbench: a visual tokenizer zoo and evaluation benchmark."""

__version__ = "0.2.0"

from .tokenizers import (  # noqa: E402
                         Tokenizer,
                         TokenizerInfo,
                         TokenLayout,
                         Tokens,
                         WeightsUnavailable,
                         create_tokenizer,
                         from_pretrained,
                         list_tokenizers,
                         load_tokenizer,
                         register_tokenizer,
                         save_pretrained,
)

__all__ = ["__version__", "Tokenizer", "TokenizerInfo", "TokenLayout", "Tokens", "WeightsUnavailable",
           "create_tokenizer", "from_pretrained", "list_tokenizers", "load_tokenizer", "register_tokenizer",
           "save_pretrained"]
