"""The bptt trainer and the raster on the real engine: a tiny ``csnn`` with ``leaky`` neurons."""

import torch
from torch.utils.data import TensorDataset
from trainer_toys import RepeatEncoder, seed_everything

from snnframe.builtins.losses.spike_losses import ce_rate
from snnframe.builtins.models.csnn import csnn
from snnframe.builtins.neurons.leaky import Leaky
from snnframe.builtins.training.bptt import TIMING_KEYS, BPTTTrainer
from snnframe.builtins.visualizers.raster import Raster
from snnframe.contracts import DatasetInfo, DataSettings, Experiment, VisualContext

SHAPE, CLASSES = (1, 20, 20), 3


class TinyImages:
    info = DatasetInfo("image", SHAPE, CLASSES)

    def splits(self, transform):
        g = torch.Generator().manual_seed(7)
        templates = torch.rand(CLASSES, *SHAPE, generator=g)

        def make(n):
            labels = torch.arange(n) % CLASSES
            return TensorDataset(4 * templates[labels] + torch.rand(n, *SHAPE, generator=g), labels)

        return make(48), make(24)


def experiment(run_dir, resume=False):
    seed_everything(3)
    run_dir.mkdir(parents=True, exist_ok=True)
    model = csnn(input_shape=SHAPE, num_classes=CLASSES, neuron=lambda: Leaky(beta=0.5), channels=[4, 8])
    return Experiment(
        name=run_dir.name,
        seed=3,
        run_dir=run_dir,
        recipe={},
        resume=resume,
        dataset=TinyImages(),
        encoder=RepeatEncoder(steps=5),
        model=model,
        data=DataSettings(batch_size=16, subset=1, test_subset=1, num_workers=0),
    )


def fit(run_dir, epochs, resume=False):
    return BPTTTrainer(epochs=epochs, lr=1e-2, device="cpu", loss=ce_rate()).fit(experiment(run_dir, resume))


def strip(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def test_csnn_resume_equals_uninterrupted_and_raster_sees_every_neuron_layer(tmp_path):
    whole = fit(tmp_path / "whole", 3)
    fit(tmp_path / "split", 2)
    resumed = fit(tmp_path / "split", 3, resume=True)
    assert strip(resumed.history) == strip(whole.history)
    assert whole.history[-1]["train_loss"] < whole.history[0]["train_loss"]

    exp = experiment(tmp_path / "whole")
    ctx = VisualContext(
        tmp_path / "whole", whole.model, exp.encoder, exp.splits()[1], whole.history, whole.device, exp.info
    )
    layers, _ = Raster().record(ctx)
    # conv 20x20 -> 16x16, pool -> 8x8 (4 channels); conv -> 4x4, pool -> 2x2 (8 channels); 3 outputs
    assert [(name.split(":")[0], spikes.shape[1]) for name, spikes in layers] == [
        ("hidden 1", 4 * 8 * 8),
        ("hidden 2", 8 * 2 * 2),
        ("output", CLASSES),
    ]
    assert [p.name for p in Raster()(ctx)][0].startswith("raster_0_target")
