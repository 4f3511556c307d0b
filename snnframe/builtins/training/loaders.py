"""The training and test DataLoaders of a run, single-process or sharded over ranks."""

from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from snnframe.builtins.training.distributed import DistContext, ShardSampler
from snnframe.builtins.training.errors import TrainingError
from snnframe.contracts import Experiment


def build_loaders(
    experiment: Experiment, dist: DistContext, device: torch.device, generator: torch.Generator
) -> tuple[DataLoader, DataLoader, Any]:
    """``(train loader, test loader, train sampler)``.

    ``generator`` shuffles a single process's training data and seeds the loader's workers
    (augmentation); the trainer reseeds it every epoch. Under DDP the ``DistributedSampler``
    shuffles alike on every rank so that the shards do not overlap.
    """
    train_set, test_set = experiment.splits()
    if len(train_set) == 0:
        raise TrainingError("the training set is empty (check data.subset)")
    data, info = experiment.data, experiment.info
    if dist.active:
        train_sampler = DistributedSampler(
            train_set, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=experiment.seed
        )
        test_sampler = ShardSampler(len(test_set), dist.rank, dist.world_size)
    else:
        train_sampler = RandomSampler(train_set, generator=generator)
        test_sampler = SequentialSampler(test_set)
    common = dict(
        batch_size=data.batch_size,
        num_workers=data.num_workers,
        collate_fn=experiment.encoder.collate_fn(info),
        pin_memory=device.type == "cuda",
    )
    train_loader = DataLoader(train_set, sampler=train_sampler, generator=generator, **common)
    test_loader = DataLoader(test_set, sampler=test_sampler, **common)
    return train_loader, test_loader, train_sampler
