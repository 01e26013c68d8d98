"""Tokenizer interface, registry and backends. Importing this package registers every backend."""

from . import (  # noqa: F401  (registers the entries)
    baselines,
    bsqvit,
    flextok,
    fqgan,
    infinity,
    kl_vae,
    llamagen,
    mar,
    mini,
    open_magvit2,
    titok,
    var,
    vqgan_lc,
)
from .base import Tokenizer, TokenizerInfo
from .pretrained import from_pretrained, register_architecture, save_pretrained
from .registry import (
                       LoadedWeights,
                       TokenizerEntry,
                       create_tokenizer,
                       get_entry,
                       list_tokenizers,
                       load_tokenizer,
                       parse_spec,
                       register_tokenizer,
)
from .tokens import TokenLayout, Tokens, pack, unpack
from .weights import Checkpoint, WeightsUnavailable

__all__ = ["Tokenizer", "TokenizerInfo", "Tokens", "TokenLayout", "TokenizerEntry", "LoadedWeights", "Checkpoint",
           "WeightsUnavailable", "register_tokenizer", "register_architecture", "load_tokenizer", "create_tokenizer",
           "list_tokenizers", "get_entry", "parse_spec", "from_pretrained", "save_pretrained", "pack", "unpack"]
