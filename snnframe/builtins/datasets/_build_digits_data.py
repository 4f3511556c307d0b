"""Development-time script that wrote ``digits.npz`` (not used at run time).

It takes the UCI optical-recognition digits from scikit-learn's bundled copy
(``sklearn/datasets/data/digits.csv.gz``: 1,797 images of 8x8, values 0..16,
last column the label) and stores them as ``uint8`` arrays.  See
``digits_ATTRIBUTION.txt`` for the source and licence.

    python -m snnframe.builtins.datasets._build_digits_data
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def main() -> None:
    from sklearn.datasets import load_digits  # development-time only

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)  # (1797, 8, 8), 0..16
    labels = bunch.target.astype(np.uint8)
    assert images.shape == (1797, 8, 8) and images.max() == 16
    out = Path(__file__).with_name("digits.npz")
    np.savez_compressed(out, images=images, labels=labels)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
