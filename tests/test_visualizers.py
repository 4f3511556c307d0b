"""Visualizers on a briefly trained toy network: files, names, frames and the data they show."""

import pytest
import torch
from PIL import Image
from trainer_toys import CLASSES, make_experiment

from snnframe.builtins.losses.spike_losses import ce_rate
from snnframe.builtins.training.bptt import BPTTTrainer
from snnframe.builtins.visualizers.curves import Curves
from snnframe.builtins.visualizers.raster import Raster
from snnframe.builtins.visualizers.spike_count import SpikeCountGif
from snnframe.contracts import VisualContext

STEPS = 12


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("vis") / "run"
    experiment = make_experiment(run_dir, steps=STEPS)
    result = BPTTTrainer(epochs=3, lr=1e-2, device="cpu", loss=ce_rate()).fit(experiment)
    _, test_set = experiment.splits()
    return VisualContext(
        run_dir, result.model, experiment.encoder, test_set, result.history, result.device, experiment.info
    )


def test_curves_write_the_seeds_two_plots_from_the_history(ctx):
    paths = Curves()(ctx)
    assert [p.name for p in paths] == ["train_loss.png", "test_acc.png"]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (720, 480)

    fig = Curves()._plot(ctx, "test_acc", "train_acc", "Accuracy (%)", "Test accuracy", 100.0)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Epoch" and ax.get_ylabel() == "Accuracy (%)"
    test_line = ax.get_lines()[0]
    assert list(test_line.get_xdata()) == [1, 2, 3]
    assert list(test_line.get_ydata()) == pytest.approx([100 * row["test_acc"] for row in ctx.history])


def test_curves_need_a_history(ctx):
    empty = VisualContext(ctx.run_dir, ctx.model, ctx.encoder, ctx.test_set, [], ctx.device, ctx.info)
    with pytest.raises(ValueError, match="no epochs in the history"):
        Curves()(empty)


def test_spike_count_gifs_are_named_by_sample_and_target(ctx):
    paths = SpikeCountGif(samples=3, max_frames=6, fps=10, hold_seconds=1.0)(ctx)
    targets = [int(ctx.test_set[i][1]) for i in range(3)]
    assert [p.name for p in paths] == [f"spike_count_{i}_target{t}.gif" for i, t in enumerate(targets)]
    with Image.open(paths[0]) as gif:
        assert gif.format == "GIF"
        # steps 0, 2, 4, ..., 12: the scanner moves every frame, so no two frames merge
        assert gif.n_frames == 7
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
    assert durations == [100] * 6 + [1100]  # the final counts are held for hold_seconds


def test_spike_count_frames_are_subsampled_and_end_at_the_last_step():
    gif = SpikeCountGif(max_frames=25)
    assert gif.frame_steps(4) == [0, 1, 2, 3, 4]
    steps = gif.frame_steps(300)
    assert len(steps) == 26 and steps[0] == 0 and steps[-1] == 300


def test_spike_count_samples_are_capped_by_the_test_set(ctx):
    small = VisualContext(
        ctx.run_dir,
        ctx.model,
        ctx.encoder,
        torch.utils.data.Subset(ctx.test_set, [0, 1]),
        ctx.history,
        ctx.device,
        ctx.info,
    )
    assert len(SpikeCountGif(samples=5, max_frames=2)(small)) == 2


def test_raster_records_every_spiking_layer_through_hooks(ctx):
    raster = Raster(sample=1)
    layers, target = raster.record(ctx)
    assert [name for name, _ in layers] == ["hidden 1: ToyLIF (lif1)", "output: ToyLIF (lif2)"]
    assert [tuple(spikes.shape) for _, spikes in layers] == [(STEPS, 16), (STEPS, CLASSES)]
    assert target == int(ctx.test_set[1][1])
    x = ctx.encoder(ctx.test_set[1][0].unsqueeze(0))
    with torch.no_grad():
        assert torch.equal(layers[-1][1], ctx.model(x)[:, 0])
    assert all(not m._forward_hooks for m in ctx.model.modules())  # hooks removed

    [path] = raster(ctx)
    assert path.name == f"raster_1_target{target}.png"
    with Image.open(path) as image:
        assert image.format == "PNG"


def test_raster_falls_back_to_the_output_layer_for_foreign_neurons(ctx):
    class Plain(torch.nn.Module):
        def forward(self, x):
            return (x[..., :CLASSES] > 0).float()

    plain = VisualContext(ctx.run_dir, Plain(), ctx.encoder, ctx.test_set, ctx.history, ctx.device, ctx.info)
    layers, _ = Raster().record(plain)
    assert [name for name, _ in layers] == ["output: model output"]


@pytest.mark.parametrize(
    "factory, params, message",
    [
        (SpikeCountGif, {"samples": 0}, "samples must be at least 1"),
        (SpikeCountGif, {"max_frames": 1}, "max_frames must be at least 2"),
        (Raster, {"max_neurons": 0}, "max_neurons must be at least 1"),
        (Curves, {"dpi": 1}, "dpi must be at least 10"),
    ],
)
def test_bad_parameters_are_value_errors(factory, params, message):
    with pytest.raises(ValueError, match=message):
        factory(**params)
