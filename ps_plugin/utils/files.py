"""Safe file handling shared by the tools: atomic writes, content hashes and torch files read
without running code from them."""
import contextlib
import hashlib
import os
import pickle
import uuid

import torch

__all__ = ["atomic_write", "file_sha256", "load_torch_file"]


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path next to `path`; on success it is flushed to disk and renamed to `path`
    (os.replace, atomic on POSIX), so readers see the old file or the complete new one, never a part.

    The temporary name keeps `path`'s extension (numpy and OpenCV pick the format from it). On an
    error the temporary file is removed and `path` is left as it was.
    """
    folder, name = os.path.split(os.path.abspath(path))
    stem, extension = os.path.splitext(name)
    temporary = os.path.join(folder, f".{stem}.{uuid.uuid4().hex}.tmp{extension}")
    try:
        yield temporary
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def file_sha256(path, chunk_bytes=1 << 20):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_torch_file(path, what="checkpoint"):
    """torch.load(path, weights_only=True) on the CPU: tensors and plain containers only, never code.

    A truncated, foreign or code-carrying file raises ValueError naming `path` and `what` it should be.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} '{path}' not found: give the path of a local file.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, pickle.UnpicklingError) as e:
        raise ValueError(
            f"Cannot read {what} '{path}': {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. "
            "The file is truncated (an interrupted copy or download), not a torch file, or holds Python "
            "objects other than tensors, which are not loaded because unpickling them can run code. "
            "Copy it again, or re-save it as a plain state dict."
        ) from e
