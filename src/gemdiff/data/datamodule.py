"""LightningDataModule: prepared GEM splits served as class-conditional batches.

A bulk training set (hundreds to thousands of rows) stays in memory as one tensor; a large
single-cell one stays sparse and each batch is scaled as it is drawn
(:class:`~gemdiff.data.dataset.StreamedRows`). Batches are drawn by index from a seeded
generator: no DataLoader workers, no collation. Under DDP each rank draws from its own share
of the rows.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from gemdiff.common import constants as K
from gemdiff.data.dataset import (DataOptions, PreparedData, StreamedRows, prepare_data,
                                  read_dataset)
from gemdiff.data.genesets import GeneSelection
from gemdiff.data.io import GEM


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _private_generator() -> torch.Generator:
    """A DataLoader draws a base seed each time it is iterated, from the global generator unless
    given its own. A generator of its own keeps validation (and the loader's creation) from
    shifting the global draws of training, so a resumed run matches an uninterrupted one."""
    return torch.Generator().manual_seed(0)


class RandomBatches(IterableDataset):
    """An endless stream of batches drawn with replacement from the training rows.

    ``x`` is a tensor, or :class:`~gemdiff.data.dataset.StreamedRows` scaled a batch at a time.
    Each process (DDP rank) draws from its own shard of the rows (every ``world``-th row from
    its rank on) with its own generator, seeded with ``seed`` and its rank, so ranks see
    different samples while runs stay reproducible. ``start`` skips the batches that steps
    before it drew: a resumed run sees the batches an uninterrupted one would.
    """

    def __init__(self, x: torch.Tensor | StreamedRows, y: torch.Tensor, batch_size: int,
                 seed: int, start: int = 0):
        self.x, self.y, self.batch_size, self.seed, self.start = x, y, batch_size, seed, start

    def shard(self) -> torch.Tensor:
        """The rows this process draws from."""
        rank, world = _rank_and_world()
        return torch.arange(rank, len(self.y), world)

    def __iter__(self):
        rank, _ = _rank_and_world()
        gen = torch.Generator().manual_seed(self.seed * 1009 + rank)
        rows = self.shard()
        n = len(rows)
        for _ in range(self.start):
            torch.randint(n, (self.batch_size,), generator=gen)
        while True:
            idx = rows[torch.randint(n, (self.batch_size,), generator=gen)]
            x = self.x[idx] if isinstance(self.x, torch.Tensor) else \
                torch.from_numpy(self.x.scaled(idx.numpy()))
            yield {K.X: x, K.Y: self.y[idx]}


class GEMDataModule(L.LightningDataModule):
    """Reads, selects, splits and scales a GEM; serves training and validation batches.

    Parameters
    ----------
    source
        How to read the matrix (``format``: synthetic, gemdiff, rnaseqdb or h5ad, and that
        format's files); see ``conf/data/``.
    matrix, test_matrix
        The matrix itself (and a test matrix), given in memory instead of read from
        ``source`` (the Python API).
    genes, gmt, gene_set, subset_size, subset_index, exclusive_subsets, n_genes, select_by
        Gene selection (:class:`~gemdiff.data.genesets.GeneSelection`).
    classes
        Keep only these classes.
    input_scale, nan_policy, scaling, test_size, train_fraction, constant_genes, permute_labels,
    allow_single_sample_classes
        Preprocessing and split (:class:`~gemdiff.data.dataset.DataOptions`).
    batch_size
        Training batch size.
    timesteps
        Number of diffusion steps, to draw the fixed timesteps of the validation batch.
    seed
        Seeds gene sampling, the split, the training fraction and the batch stream.
    """

    def __init__(
        self,
        source: Mapping[str, Any],
        input_scale: str = "auto",
        nan_policy: str = "replace",
        scaling: str = "global",
        genes: Sequence[str] | None = None,
        gmt: str | None = None,
        gene_set: str | None = None,
        subset_size: int = 16,
        subset_index: int | None = None,
        exclusive_subsets: bool = False,
        n_genes: int | None = None,
        select_by: str = "variable",
        classes: Sequence[str] | None = None,
        test_size: float = 0.33,
        train_fraction: float = 1.0,
        batch_size: int = 32,
        timesteps: int = 1000,
        seed: int = 0,
        constant_genes: str = "error",
        permute_labels: bool = False,
        allow_single_sample_classes: bool = False,
        matrix: GEM | None = None,
        test_matrix: GEM | None = None,
    ):
        super().__init__()
        self.source = dict(source)
        self.matrices = (matrix, test_matrix)
        self.selection = GeneSelection(
            genes=None if genes is None else list(genes), gmt=gmt, gene_set=gene_set,
            subset_size=subset_size, subset_index=subset_index,
            exclusive_subsets=exclusive_subsets, n_genes=n_genes, select_by=select_by,
            seed=seed)
        self.options = DataOptions(
            input_scale=input_scale, nan_policy=nan_policy, scaling=scaling,
            constant_genes=constant_genes, classes=None if classes is None else tuple(classes),
            test_size=test_size, train_fraction=train_fraction, permute_labels=permute_labels,
            seed=seed, allow_single_sample_classes=allow_single_sample_classes)
        self.batch_size = batch_size
        self.timesteps = timesteps
        self.seed = seed
        self.data: PreparedData | None = None
        self._start_step = 0  # set when resuming from a checkpoint

    def prepare(self) -> PreparedData:
        """Read and prepare the data once; later calls return the same result."""
        if self.data is None:
            train, test = self.matrices
            if train is None:
                train, test = read_dataset(self.source)
            self.data = prepare_data(train, test, self.selection, self.options)
        return self.data

    def setup(self, stage: str | None = None) -> None:
        data = self.prepare()
        if data.stream is None:
            self.x_train = torch.from_numpy(data.x_train)
            self.y_train = torch.from_numpy(data.y_train)
        else:
            self.x_train, self.y_train = data.stream, torch.from_numpy(data.stream.labels)
        self.x_test = torch.from_numpy(data.x_test)
        self.y_test = torch.from_numpy(data.y_test)

    def train_dataloader(self) -> DataLoader:
        stream = RandomBatches(self.x_train, self.y_train, self.batch_size, self.seed,
                               start=self._start_step)
        return DataLoader(stream, batch_size=None, generator=_private_generator())

    def state_dict(self) -> dict[str, Any]:
        # Steps taken so far = batches consumed (one batch per optimizer step).
        trainer = getattr(self, "trainer", None)
        return {"batches_drawn": int(trainer.global_step) if trainer is not None else 0}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._start_step = int(state_dict.get("batches_drawn", 0))

    def val_dataloader(self) -> DataLoader:
        # The held-out split with fixed timesteps and noise, so validation losses of one run
        # (and of runs with the same seed) are comparable.
        gen = torch.Generator().manual_seed(self.seed + 1)
        n = self.x_test.shape[0]
        batch = {
            K.X: self.x_test,
            K.Y: self.y_test,
            K.T: torch.randint(self.timesteps, (n,), generator=gen),
            K.NOISE: torch.randn(self.x_test.shape, generator=gen),
        }
        return DataLoader([batch], batch_size=None, generator=_private_generator())
