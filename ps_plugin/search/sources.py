"""Gallery sources: image files (paths, folders, globs) and the frames of a video (OpenCV)."""
import glob
import os

import cv2
from detectron2.data import detection_utils as utils

__all__ = ["IMAGE_EXTENSIONS", "list_images", "read_image_bgr", "video_frame_count", "iter_video_frames",
           "read_video_frame"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(inputs):
    """Image files named by `inputs` (files, folders searched recursively, glob patterns), sorted and
    de-duplicated within each input; a pattern or folder that yields nothing is an error."""
    paths = []
    for item in [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
        item = os.path.expanduser(str(item))
        if os.path.isdir(item):
            found = [os.path.join(root, f) for root, _, files in os.walk(item) for f in files]
            found = [p for p in found if p.lower().endswith(IMAGE_EXTENSIONS)]
        elif os.path.isfile(item):
            found = [item]
        else:
            found = [p for p in glob.glob(item) if os.path.isfile(p)]
        if not found:
            raise FileNotFoundError(
                f"No image found at '{item}': give existing image files, a folder of "
                f"{'/'.join(IMAGE_EXTENSIONS)} images, or a glob pattern that matches some."
            )
        paths += sorted(os.path.abspath(p) for p in found)
    return list(dict.fromkeys(paths))


def read_image_bgr(path):
    """Image file -> uint8 [H, W, 3] BGR (EXIF orientation applied); a clear error names a bad file."""
    try:
        return utils.read_image(path, format="BGR")
    except (OSError, ValueError, SyntaxError) as e:
        raise OSError(
            f"Cannot read image '{path}': {type(e).__name__}: {e}. The file is missing, not an image or "
            "corrupt: fix or remove it."
        ) from e


def _open_video(path):
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise OSError(
            f"Cannot open video '{path}': the file is missing or its codec is not supported by this OpenCV "
            "build. Convert it (e.g. to MJPG .avi or H.264 .mp4) or extract its frames as images."
        )
    return capture


def video_frame_count(path):
    """Number of frames the container reports (0 when unknown)."""
    capture = _open_video(path)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return max(count, 0)


def iter_video_frames(path, every=1, on_error=None):
    """Yield (frame_number, BGR uint8 [H, W, 3]) for frames 0, every, 2*every, ... of a video.

    A frame that cannot be decoded raises OSError, or with `on_error` is passed to
    on_error(frame_number, OSError) and skipped.
    """
    if every < 1:
        raise ValueError(f"every={every}: index every k-th frame of '{path}' with k >= 1.")
    capture = _open_video(path)
    try:
        frame_number = 0
        while capture.grab():
            if frame_number % every == 0:
                ok, frame = capture.retrieve()
                if ok:
                    yield frame_number, frame
                else:
                    error = OSError(f"Cannot decode frame {frame_number} of video '{path}'.")
                    if on_error is None:
                        raise error
                    on_error(frame_number, error)
            frame_number += 1
    finally:
        capture.release()


def read_video_frame(path, frame_number):
    """One BGR frame [H, W, 3] of a video, by seeking (frame-exact for intra-frame codecs like MJPG)."""
    capture = _open_video(path)
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, frame_number)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise IndexError(f"Video '{path}' has no readable frame {frame_number}.")
    return frame
