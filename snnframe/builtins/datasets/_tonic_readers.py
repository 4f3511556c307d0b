"""tonic's data set classes reading extracted trees without the archives (kept apart: imports tonic).

tonic treats a data set as present only when its downloaded archive exists and enough
files were extracted, and downloads otherwise. These subclasses keep tonic's file discovery,
labels and readers and only relax that check (``data.require_archives = false``).
"""

import tonic


class NMNIST(tonic.datasets.NMNIST):  # tonic names the folder after the class: keep "NMNIST"
    """tonic's ``NMNIST``: the extracted ``.bin`` files are enough (tonic: ``train.zip`` and 10,000 files)."""

    def _check_exists(self) -> bool:
        return self._folder_contains_at_least_n_files_of_type(1, ".bin")


class DVSGesture(tonic.datasets.DVSGesture):  # the folder is "DVSGesture"
    """tonic's ``DVSGesture``: the extracted ``.npy`` files are enough (tonic: the ``.tar.gz`` and 100 files)."""

    def _check_exists(self) -> bool:
        return self._folder_contains_at_least_n_files_of_type(1, ".npy")


ExtractedNMNIST = NMNIST
ExtractedDVSGesture = DVSGesture
