"""`TokenDataset`: the tokens `vtbench tokenize` wrote, as a torch ``Dataset`` for AR training.

Shards are memory-mapped lazily in each process (``DataLoader(num_workers > 0)`` workers open their own
maps; nothing is loaded whole). An item is ``(sequence, label)``: the flat ``(L,)`` / ``(L, K)`` sequence
of one view (`Tokens.flat` of the stored layout; ``output="ids"`` gives one joint id per position
instead), and the class label (-1 without labels). ``view="random"`` draws one of the stored views per
access, as LlamaGen's and MAR's cached datasets do; an int takes that view; ``"all"`` stacks them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .errors import VtbenchError
from .pretokenize import SCHEMA, Storage, from_storage
from .tokenizers import TokenLayout, Tokens


class TokenDataError(VtbenchError, ValueError):
    """A token folder that cannot be read (unfinished, another format, a bad request)."""


def _layout(d: dict) -> TokenLayout:
    return TokenLayout(d["kind"], tuple(d["vocab_sizes"]), tuple(tuple(s) for s in d["scale_shapes"]),
                       d["spatial_dims"], d["multiscale"], d["channels"], d["order"], d["latent_bits"])


def read_meta(root: str | Path) -> dict:
    root = Path(root)
    path = root / "meta.json"
    if not path.exists():
        started = (root / "plan.json").exists()
        raise TokenDataError(f"{root} has no meta.json: " + (
            "the tokenization did not finish; run the same `vtbench tokenize` command again to complete it"
            if started else "not a folder written by `vtbench tokenize`"))
    meta = json.loads(path.read_text())
    if meta.get("schema") != SCHEMA:
        raise TokenDataError(f"{path} has schema {meta.get('schema')!r}; this vtbench reads {SCHEMA}")
    return meta


class TokenDataset(torch.utils.data.Dataset):
    def __init__(self, root: str | Path, output: str = "flat", view: int | str = "random"):
        if output not in ("flat", "ids"):
            raise TokenDataError(f"output is 'flat' or 'ids', got {output!r}")
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.layout = _layout(self.meta["layout"])
        s = self.meta["storage"]
        self.storage = Storage(s["array"], s["dtype"], tuple(s["shape"]))
        if output == "ids" and not self.layout.discrete:
            raise TokenDataError("continuous latents have no ids; use output='flat'")
        self.views = len(self.meta["views"])
        if not (view in ("random", "all") or (isinstance(view, int) and 0 <= view < self.views)):
            raise TokenDataError(f"view is 'random', 'all' or 0..{self.views - 1} ({', '.join(self.meta['views'])}), "
                                 f"got {view!r}")
        self.output, self.view = output, view
        counts = [sh["count"] for sh in self.meta["shards"]]
        self._ends = np.cumsum(counts)
        self._maps: dict[tuple[int, str], np.ndarray] = {}
        self._records: dict[int, dict] = {}

    def __getstate__(self) -> dict:  # workers open their own maps: a pickled memmap would copy its data
        return {**self.__dict__, "_maps": {}}

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def classes(self) -> list[str] | None:
        return (self.meta.get("labels") or {}).get("classes")

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside 0..{len(self) - 1}")
        k = int(np.searchsorted(self._ends, index, side="right"))
        return k, index - (int(self._ends[k - 1]) if k else 0)

    def _array(self, k: int, suffix: str = ".npy") -> np.ndarray:
        key = (k, suffix)
        if key not in self._maps:  # opened in the process that reads it (DataLoader workers included)
            self._maps[key] = np.load(self.root / self.meta["shards"][k]["file"].replace(".npy", suffix),
                                      mmap_mode="r")
        return self._maps[key]

    def record(self, k: int) -> dict:
        if k not in self._records:
            self._records[k] = json.loads((self.root / self.meta["shards"][k]["file"].replace(".npy", ".json"))
                                          .read_text())
        return self._records[k]

    def sample_id(self, index: int) -> str:
        k, j = self._locate(index)
        return self.record(k)["ids"][j]

    def label(self, index: int) -> int:
        k, j = self._locate(index)
        labels = self.record(k).get("labels")
        return -1 if labels is None else int(labels[j])

    def _pick(self) -> int | slice:
        if self.view == "random":
            return int(torch.randint(self.views, ()))
        return slice(None) if self.view == "all" else self.view

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        k, j = self._locate(index)
        stored = np.array(self._array(k)[j, self._pick()])
        return from_storage(stored, self.storage, self.layout, self.output), self.label(index)

    def tokens(self, index: int, view: int = 0) -> Tokens:
        """One stored view as a batch-of-one `Tokens`, ready for ``tok.decode``."""
        k, j = self._locate(index)
        seq = from_storage(np.array(self._array(k)[j, view]), self.storage, self.layout)[None]
        lengths = self.record(k).get("lengths")
        return Tokens.from_flat(seq, self.layout, None if lengths is None else torch.tensor([lengths[j][view]]))

    def posterior(self, index: int, view: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Continuous tokenizers with a posterior: (mean, logvar), each flat ``(L, C)``."""
        if not self.meta["storage"].get("logvar"):
            raise TokenDataError("these latents were stored without their posterior's log-variance")
        k, j = self._locate(index)
        return (from_storage(np.array(self._array(k)[j, view]), self.storage, self.layout),
                from_storage(np.array(self._array(k, ".logvar.npy")[j, view]), self.storage, self.layout))
