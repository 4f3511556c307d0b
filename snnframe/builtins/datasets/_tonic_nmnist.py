"""tonic's NMNIST reading an extracted tree without the archives (kept apart: imports tonic)."""

import tonic


class NMNIST(tonic.datasets.NMNIST):  # tonic names the folder after the class: keep "NMNIST"
    """tonic's ``NMNIST`` minus its presence check: the extracted ``.bin`` files are enough.

    tonic treats the data set as present only when the zip archive exists and at
    least 10,000 ``.bin`` files were extracted, and downloads otherwise.  File
    discovery, labels (the digit folder) and ``tonic.io.read_mnist_file`` stay tonic's.
    """

    def _check_exists(self) -> bool:
        return self._folder_contains_at_least_n_files_of_type(1, ".bin")
