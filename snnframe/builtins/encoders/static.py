"""The ``static`` encoder: the same image at every time step."""

from __future__ import annotations

from snnframe.contracts import DatasetInfo


class ImageEncoder:
    """Shared by encoders of image batches ``[B, C, H, W]``: no per-sample work."""

    modality = "image"

    def sample_transform(self, info: DatasetInfo):
        return None

    def collate_fn(self, info: DatasetInfo):
        return None

    def input_shape(self, info: DatasetInfo) -> tuple[int, ...]:
        return tuple(info.shape)


def check_num_steps(num_steps: int) -> None:
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")


class Static(ImageEncoder):
    """Present the image unchanged for ``num_steps`` steps (the seed's "static" input).

    Returns ``x.unsqueeze(0).expand(num_steps, ...)``: a view with stride 0 along
    time, so no T copies are made and the engine can run the first layer once.
    """

    def __init__(self, *, num_steps: int = 50):
        check_num_steps(num_steps)
        self.num_steps = num_steps

    def __call__(self, x):
        return x.unsqueeze(0).expand(self.num_steps, *x.shape)
