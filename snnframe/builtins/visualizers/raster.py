"""``raster``: spike raster of every spiking layer (hidden and output) for one test sample.

Spiking layers are the modules that are ``SpikingNeuron`` instances; their
outputs (spikes ``[T, B, ...]``) are recorded with forward hooks.
"""

from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from snnframe.builtins.visualizers.samples import class_names, run_samples
from snnframe.contracts import VisualContext
from snnframe.engine.neuron import SpikingNeuron
from snnframe.io import atomic_path


def spiking_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SpikingNeuron)]


class Raster:
    """``raster_<sample>_target<label>.png``: one panel per spiking layer, time on the x axis."""

    def __init__(self, *, sample: int = 0, max_neurons: int = 300, dpi: int = 120):
        if sample < 0:
            raise ValueError(f"sample must be >= 0, got {sample}")
        if max_neurons < 1:
            raise ValueError(f"max_neurons must be at least 1, got {max_neurons}")
        if dpi < 10:
            raise ValueError(f"dpi must be at least 10, got {dpi}")
        self.sample, self.max_neurons, self.dpi = sample, max_neurons, dpi

    def __call__(self, ctx: VisualContext) -> list[Path]:
        layers, target = self.record(ctx)
        path = Path(ctx.run_dir) / f"raster_{self.sample}_target{target}.png"
        with atomic_path(path) as tmp:  # a full disk leaves the old plot, not a 0-byte one
            self._plot(layers, class_names(ctx), target).savefig(tmp, dpi=self.dpi)
        return [path]

    def record(self, ctx: VisualContext) -> tuple[list[tuple[str, torch.Tensor]], int]:
        """Spikes ``[T, neurons]`` of each spiking layer (output last) for the sample, and its target."""
        if self.sample >= len(ctx.test_set):
            raise ValueError(f"sample {self.sample} is beyond the test set's {len(ctx.test_set)} samples")
        recorded: list[tuple[str, torch.Tensor]] = []

        def record(name):
            def hook(module, inputs, output):
                spikes = output[0] if isinstance(output, tuple) else output
                recorded.append((name, spikes.detach()[:, 0].float().flatten(1).cpu()))

            return hook

        handles = [
            m.register_forward_hook(record(f"{type(m).__name__} ({name})")) for name, m in spiking_layers(ctx.model)
        ]
        try:
            output, targets = run_samples(ctx, [self.sample])
        finally:
            for handle in handles:
                handle.remove()
        output = output[:, 0]
        if not recorded or not torch.equal(recorded[-1][1], output):
            recorded.append(("model output", output))
        titles = [f"hidden {i + 1}" for i in range(len(recorded) - 1)] + ["output"]
        return [(f"{title}: {name}", spikes) for title, (name, spikes) in zip(titles, recorded)], int(targets[0])

    def _plot(self, layers: list[tuple[str, torch.Tensor]], names: list[str], target: int) -> Figure:
        output = layers[-1][1]
        # a panel per layer, taller for layers with more (shown) neurons
        heights = [min(3.0, 0.9 + 0.1 * min(s.shape[1], self.max_neurons)) for _, s in layers]
        fig = Figure(figsize=(8, 1.0 + sum(heights)))
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(layers), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
        steps = output.shape[0]
        for ax, (name, spikes) in zip(axes, layers):
            neurons = spikes.shape[1]
            shown = torch.linspace(0, neurons - 1, min(neurons, self.max_neurons)).round().long().unique()
            t, n = torch.nonzero(spikes[:, shown], as_tuple=True)
            ax.scatter(t.numpy(), n.numpy(), s=4 if len(shown) > 50 else 12, marker="|", c="black", linewidths=0.8)
            note = "" if len(shown) == neurons else f", {len(shown)} shown"
            ax.set_title(f"{name}: {neurons} neurons{note}, firing rate {spikes.mean().item():.1%}", fontsize=9)
            if spikes is layers[-1][1] and neurons == len(names):
                ax.set_yticks(range(neurons), names)
                ax.set_ylabel("Class")
            else:
                ax.set_ylabel("Neuron")
            ax.set_ylim(-0.5, len(shown) - 0.5)
            ax.set_xlim(-0.5, steps - 0.5)
        axes[-1].set_xlabel("Time step")
        prediction = names[int(output.sum(0).argmax())] if output.any() else "none"
        fig.suptitle(f"Spike raster, target {names[target]}, prediction {prediction}")
        fig.tight_layout()
        return fig
