"""Reading MATLAB strings as scipy.io.loadmat returns them (CUHK-SYSU and PRW annotations)."""
import numpy as np


def mat_string(value):
    """A MATLAB string as loadmat returns it (array(['s1.jpg']), nested or bare) -> str."""
    array = np.asarray(value)
    while array.dtype == object and array.size == 1:
        array = np.asarray(array.ravel()[0])
    return str(array.ravel()[0]).strip() if array.size else ""


def mat_strings(value):
    """A MATLAB cell array (any shape) of strings -> list[str] in storage order."""
    return [mat_string(item) for item in np.asarray(value).ravel()]
