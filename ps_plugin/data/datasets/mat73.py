"""Reading MATLAB v7.3 files (HDF5) with h5py: the original CUHK03 release (cuhk03.py).

A v7.3 file stores every MATLAB array column-major, so h5py sees its dimensions reversed (an
H x W x 3 image is an HDF5 dataset [3, W, H]); `mat73_array` transposes back. A cell array is a
dataset of object references into the file's `#refs#` group; an empty array is stored as its
dimensions (uint64 [0, 0]) with the attribute MATLAB_empty = 1. (matlab.py reads the older
formats through scipy.io.loadmat and stays numpy-only; this module needs h5py.)
"""
import h5py
import numpy as np

from .common import require_path


def open_mat73(path, what, fix):
    """The open h5py.File of a MATLAB v7.3 file; FileNotFoundError / ValueError naming `path` and `fix`."""
    require_path(path, what, fix)
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: not a MATLAB v7.3 (HDF5) .mat file ({e}). {fix}") from e


def mat73_array(dataset):
    """A v7.3 dataset as a numpy array in MATLAB's index order (the HDF5 order reversed)."""
    return np.asarray(dataset[()]).T


def mat73_is_empty(dataset):
    """True for an empty MATLAB array: flagged MATLAB_empty, or stored as its all-zero dimensions."""
    if dataset.attrs.get("MATLAB_empty", 0):
        return True
    return dataset.ndim <= 1 and not np.asarray(dataset[()]).any()


def mat73_cell(mat, key):
    """The object references of the 1-D cell array `key` (stored [1, N] or [N, 1]) of an open v7.3
    file, in MATLAB's order; ValueError naming the file and the key when it is not one."""
    if key not in mat or not isinstance(mat[key], h5py.Dataset) or mat[key].dtype != h5py.ref_dtype:
        raise ValueError(f"{mat.filename}: no MATLAB cell array '{key}' (the file holds {sorted(mat.keys())}).")
    return list(mat73_array(mat[key]).ravel())
