"""Tokenizer interface, registry and backends. Importing this package registers every backend."""

from .base import Tokenizer, TokenizerInfo
from .registry import (LoadedWeights, TokenizerEntry, get_entry, list_tokenizers, load_tokenizer, parse_spec,
                       register_tokenizer)
from .tokens import Tokens
from .weights import WeightsUnavailable
from . import baselines, kl_vae, llamagen, mini  # noqa: F401  (registers the entries)

__all__ = ["Tokenizer", "TokenizerInfo", "Tokens", "TokenizerEntry", "LoadedWeights", "WeightsUnavailable",
           "register_tokenizer", "load_tokenizer", "list_tokenizers", "get_entry", "parse_spec"]
