"""Offline teacher pairs: noise z -> teacher image x (+ label, + K trajectory states), GET's recipe.

A store is a folder (format edgedit.pairs/2):
  manifest.json   the store's settings, written before its first shard: format, edgedit_version,
                  source, teacher {file, sha256, config}, sampler, trajectory {k, steps, sigmas or
                  timesteps}, shape [C, H, H], num_classes, image_dtype, class_balanced,
                  seeds {first, count}, shard_size (an import adds shard_counts and files), and
                  settings_sha256, their digest (the teacher's file name aside); then the verified
                  shards (each one's meta.json plus its name), expected_shards, complete, updated
  shard-NNNNNN/   shard NNNNNN (6 digits), written whole or not at all:
    seeds.npy      (n,) int64             sample k's integer seed
    z.npy          (n,C,H,W) float32      unit-variance noise = noise_from_seeds(seed, scheme) (not x sigma_max)
    image.npy      (n,C,H,W) float16|32   the teacher's final image, unclipped
    label.npy      (n,) int64             class labels in [0, num_classes) (only when num_classes > 0)
    trajectory.npy (n,K,C,H,W) float16    K intermediate ODE states x_i (only when K > 0)
    meta.json      {index, settings_sha256, first_seed, count, sha256: {array: digest}}
  .lock           held (fcntl.flock) by the one process writing the store
Shard j holds seeds first + j*shard_size onwards (the last shard may be shorter); an import's shard
j holds shard_counts[j] pairs, numbered in the order of GET's files.

Writers (`generate`, `import-get`, `verify`) hold .lock exclusively, so a second writer is refused
at once rather than mixing shards; parallel --shard I/N workers write a folder each and their
shard-* folders are then copied together (`edgedit pairs verify` rebuilds the manifest of the union).
A run with other settings refuses a store (--force starts it over); a re-run skips verified shards
and redoes damaged ones. Readers (`PairsStore`: distill, design sweep) check everything before use:
the manifest against its schema, shard names (plain shard-NNNNNN folders, no links), every file's
checksum, shape and dtype, seeds, labels and finite values. Arrays are plain .npy read by memory map
(never unpickled).

The package: `manifest` (the format, its records and bounds, the shard plan), `shards` (checking and
writing one shard), `writer` (a store's lock, its manifest, `verify`), `generate` (from a teacher),
`get_import` (GET's released pairs) and `reader` (`PairsStore`, the torch dataset). Staging and
locking are the contract's (contract/staging.py).
"""

from edgedit.data.pairs.generate import generate_pairs
from edgedit.data.pairs.get_import import import_get
from edgedit.data.pairs.manifest import Manifest, ManifestHeader, read_manifest
from edgedit.data.pairs.reader import PairsStore, torch_dataset
from edgedit.data.pairs.shards import inspect_shard
from edgedit.data.pairs.writer import verify_pairs

__all__ = [
    "Manifest",
    "ManifestHeader",
    "PairsStore",
    "generate_pairs",
    "import_get",
    "inspect_shard",
    "read_manifest",
    "torch_dataset",
    "verify_pairs",
]
