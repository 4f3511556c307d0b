"""Encoders that wrap ``snntorch.spikegen``: same parameter names, same results.

Images ``[B, C, H, W]`` in [0, 1] become spikes ``[T, B, C, H, W]`` on the
training device.  Random draws (``rate``) use torch's global generator, which
the core seeds from ``experiment.seed``.
"""

from __future__ import annotations

from snnframe.builtins.encoders.static import ImageEncoder, check_num_steps


def _check_first_spike_time(first_spike_time: int, num_steps: int) -> None:
    if not 0 <= first_spike_time <= num_steps - 1:
        raise ValueError(
            f"first_spike_time must be between 0 and num_steps - 1 ({num_steps - 1}), got {first_spike_time}"
        )


class Rate(ImageEncoder):
    """Bernoulli spikes with probability ``clamp(gain * x + offset, 0, 1)`` at every step
    (``snntorch.spikegen.rate``); no spikes before ``first_spike_time``."""

    def __init__(self, *, num_steps: int = 50, gain: float = 1.0, offset: float = 0.0, first_spike_time: int = 0):
        check_num_steps(num_steps)
        _check_first_spike_time(first_spike_time, num_steps)
        self.num_steps = num_steps
        self.gain = gain
        self.offset = offset
        self.first_spike_time = first_spike_time

    def __call__(self, x):
        from snntorch import spikegen

        return spikegen.rate(
            x, num_steps=self.num_steps, gain=self.gain, offset=self.offset, first_spike_time=self.first_spike_time
        )


class Latency(ImageEncoder):
    """One spike per input at a time that falls as intensity rises (``snntorch.spikegen.latency``).

    The default code is logarithmic (an RC neuron charging with time constant
    ``tau``); ``linear`` makes it linear; ``normalize`` stretches the spike times
    over ``num_steps`` (snnTorch normalises by the largest time in the batch).
    Inputs below ``threshold`` fire at the last step, or never with ``clip``.
    """

    def __init__(
        self,
        *,
        num_steps: int = 50,
        threshold: float = 0.01,
        tau: float = 1.0,
        first_spike_time: int = 0,
        on_target: float = 1.0,
        off_target: float = 0.0,
        clip: bool = False,
        normalize: bool = False,
        linear: bool = False,
        interpolate: bool = False,
        epsilon: float = 1e-7,
    ):
        check_num_steps(num_steps)
        _check_first_spike_time(first_spike_time, num_steps)
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be between 0 and 1 (exclusive), got {threshold}")
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        self.num_steps = num_steps
        self.kwargs = dict(
            threshold=threshold,
            tau=tau,
            first_spike_time=first_spike_time,
            on_target=on_target,
            off_target=off_target,
            clip=clip,
            normalize=normalize,
            linear=linear,
            interpolate=interpolate,
            epsilon=epsilon,
        )
        self._check_spike_times()

    def _check_spike_times(self) -> None:
        """snnTorch raises at the first batch when a spike time exceeds ``num_steps - 1``; say it now.

        A black pixel spikes last, so snnTorch's own code on a zero input decides.
        """
        import torch
        from snntorch import spikegen

        try:
            spikegen.latency(torch.zeros(1), num_steps=self.num_steps, **self.kwargs)
        except Exception as exc:  # snnTorch raises a bare Exception
            if "out of bounds" not in str(exc):
                raise
            k = self.kwargs
            raise ValueError(
                f"with num_steps={self.num_steps}, tau={k['tau']} and threshold={k['threshold']} the latest "
                "spike falls after the last step: raise num_steps, lower tau, or set normalize = true"
            ) from None

    def __call__(self, x):
        from snntorch import spikegen

        return spikegen.latency(x, num_steps=self.num_steps, **self.kwargs)


class Delta(ImageEncoder):
    """Spike where the input rises by at least ``threshold`` from one step to the next
    (``snntorch.spikegen.delta``; ``off_spike`` adds -1 spikes for falls).

    The image is held for ``num_steps`` steps, so a static image spikes only at
    the first step: its onset, compared with zeros (snnTorch's ``padding=False``;
    with padding a held image would never spike, so it is not offered).  Useful as
    an onset code or for checking a pipeline; ``rate`` and ``latency`` carry more
    information.
    """

    def __init__(self, *, num_steps: int = 50, threshold: float = 0.1, off_spike: bool = False):
        check_num_steps(num_steps)
        if not threshold > 0:
            raise ValueError(f"threshold must be positive (every step would spike), got {threshold}")
        self.num_steps = num_steps
        self.threshold = threshold
        self.off_spike = off_spike

    def __call__(self, x):
        from snntorch import spikegen

        x = x.unsqueeze(0).expand(self.num_steps, *x.shape)
        return spikegen.delta(x, threshold=self.threshold, padding=False, off_spike=self.off_spike)
