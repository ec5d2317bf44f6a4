"""The map: MiniSom on the gathered table, or the batch engine's epochs over blocks of partitions."""

import numpy as np

from somseg.batch_som import (
    EpochRequest,
    EpochSums,
    GatheredRows,
    GatherRequest,
    PickedRows,
    PickRequest,
    TrainingBlock,
    group_blocks,
    join_blocks,
)
from somseg.config import SomConfig
from somseg.kernels import DedupMode
from somseg.som import MiniSomEngine, build_engine
from somseg.stats import fit_in_memory
from somseg.tasks.catalog import BlockSource, Cleaning, ImputedPart, PackedBlocks, Store, Weights, step


@step("train-minisom", saves=Weights)
def train_minisom(store: Store, parts: list[ImputedPart], cleaning: Cleaning, som: SomConfig) -> np.ndarray:
    """MiniSom's online rule on every standardised row, gathered in partition order."""
    engine = build_engine(som)
    assert isinstance(engine, MiniSomEngine)
    cleaner = cleaning.load().cleaner
    return engine.fit(np.concatenate([part.matrix(cleaner) for part in parts])).weights_


@step("pack-training-blocks", saves=PackedBlocks)
def pack_training_blocks(
    store: Store, parts: list[ImputedPart], cleaning: Cleaning, max_rows: int, dedup: DedupMode
) -> tuple[list[ImputedPart | TrainingBlock], list[int]]:
    """Join the partitions' small training blocks, so that an epoch runs over few blocks; each block's first partition."""
    cleaner = cleaning.load().cleaner
    groups = group_blocks([part.block_rows for part in parts], max_rows)
    blocks = [
        parts[g[0]] if len(g) == 1 else join_blocks([parts[i].imputed_block(cleaner) for i in g], dedup)
        for g in groups
    ]
    return blocks, [g[0] for g in groups]


@step("pick-rows")
def pick_rows(request: PickRequest, part: ImputedPart, cleaning: Cleaning, first_row: int) -> PickedRows:
    """The rows a random initialisation starts the neurons on, from one partition."""
    return request.partial(part.matrix(cleaning.load().cleaner), first_row)


@step("som-epoch")
def som_epoch(request: EpochRequest, block: BlockSource, cleaning: Cleaning, first_row: int) -> EpochSums:
    """One epoch's per-unit sums over one training block, whose first row is row ``first_row`` of the table."""
    cleaner = cleaning.load().cleaner
    kept = None if block.weighted else request.rows_kept(first_row, block.n_rows)
    if kept is not None:  # a sampled epoch reads and standardises only the rows it keeps
        return request.partial_of_kept(block.rows(cleaner, kept))
    return request.partial(block.block(cleaner), first_row)


@step("gather-epoch-samples")
def gather_epoch_samples(request: GatherRequest, block: BlockSource, cleaning: Cleaning, first_row: int) -> GatheredRows:
    """The standardised rows of one unweighted block that any sampled epoch keeps, each with its epochs' mask."""
    positions, masks = request.positions(first_row, block.n_rows)
    return GatheredRows.of(block.rows(cleaning.load().cleaner, positions), masks)


@step("train-batch-som", saves=Weights)
def train_on_block(
    store: Store, som: SomConfig, start: np.ndarray, block: BlockSource, cleaning: Cleaning, n_rows: int
) -> np.ndarray:
    """Every epoch of the batch engine over the one training block of the table (``n_rows`` rows), from ``start``."""
    trainer = build_engine(som).trainer()
    trainer.start_from(start)
    trainer.plan(n_rows, block.n_rows)
    fit_in_memory(trainer, block.block(cleaning.load().cleaner))
    return trainer.weights_


@step("save-weights", saves=Weights)
def save_weights(store: Store, weights: np.ndarray) -> np.ndarray:
    """Keep the trained codebook."""
    return weights
