"""Reading a store: `PairsStore` (checked once, then memory-mapped) and a torch Dataset over it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgedit.contract.errors import EdgeditError
from edgedit.data.pairs.manifest import Manifest, read_manifest
from edgedit.data.pairs.shards import Damaged, inspect_shard


class PairsStore:
    """A checked pairs store, read through memory maps (nothing is loaded until indexed).

    Opening it checks the manifest (schema, settings, digest, shard list), each listed shard against
    it (plain shard-NNNNNN folders, meta.json, every file's checksum, dtype and shape) and the data
    (seeds, labels within num_classes, finite values); the first problem is one EdgeditError line.
    This is how `distill` and `design sweep` open their pairs before training.
    """

    def __init__(self, folder: str | os.PathLike, require_complete: bool = True):
        self.folder = Path(folder)
        record, layout = read_manifest(self.folder, Manifest)
        if require_complete and not record.complete:
            raise EdgeditError(
                f"{self.folder}: incomplete ({len(record.shards)} of {record.expected_shards} shards "
                "verified); finish it with `edgedit pairs generate` (same settings) or check it with "
                "`edgedit pairs verify`"
            )
        if not record.shards:
            raise EdgeditError(f"{self.folder}: no verified shards; run `edgedit pairs generate`")
        self.settings = layout.settings
        self.manifest = record.model_dump(mode="json", exclude_unset=True)
        self.shards = []
        for entry in record.shards:
            path = self.folder / entry.name
            try:
                meta, arrays = inspect_shard(self.folder, entry.index, layout)
            except Damaged as err:
                raise EdgeditError(
                    f"{path}: {err}; run `edgedit pairs verify {self.folder}`, then `edgedit pairs "
                    "generate` with the same settings to redo it"
                ) from None
            if meta.sha256 != entry.sha256:
                raise EdgeditError(
                    f"{path}: replaced since the manifest was written; run `edgedit pairs verify {self.folder}`"
                )
            self.shards.append(arrays)
        self.offsets = np.cumsum([0] + [len(s["seeds"]) for s in self.shards])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[dict[str, np.ndarray], int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        shard = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.shards[shard], index - int(self.offsets[shard])

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        shard, row = self.locate(index)
        return {name: np.array(array[row]) for name, array in shard.items()}

    def column(self, name: str) -> StoreColumn:
        if name not in self.shards[0]:
            raise EdgeditError(f"{self.folder}: the pairs have no '{name}' arrays")
        return StoreColumn(self, name)


class StoreColumn:
    """One array of a store across its shards, indexed by an integer array (reads only those rows)."""

    def __init__(self, store: PairsStore, name: str):
        self.store, self.name = store, name
        self.dtype = store.shards[0][name].dtype
        self.shape = (len(store), *store.shards[0][name].shape[1:])

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index) -> np.ndarray:
        index = np.asarray(index)
        shard = np.searchsorted(self.store.offsets, index, side="right") - 1
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        for s in np.unique(shard):
            mask = shard == s
            out[mask] = self.store.shards[s][self.name][index[mask] - self.store.offsets[s]]
        return out  # a writable copy of one row


def torch_dataset(folder: str | os.PathLike, trajectory: bool = False):
    """A torch Dataset over a store: items (z, image float32, label or -1[, trajectory float32])."""
    import torch

    store = PairsStore(folder)

    class PairsDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(store)

        def __getitem__(self, index: int):
            item = store[index]
            label = torch.tensor(int(item["label"]) if "label" in item else -1)
            out = (torch.from_numpy(item["z"]), torch.from_numpy(item["image"].astype(np.float32)), label)
            if trajectory:
                out += (torch.from_numpy(item["trajectory"].astype(np.float32)),)
            return out

    dataset = PairsDataset()
    dataset.store = store
    return dataset


#################################################################################
#                          GET's released pairs                                 #
#################################################################################
