"""Drawings for the demo and the search CLI: detections on an image, and the ranked search montage."""
import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = ["crop_box", "draw_detections", "save_montage"]

BOX_COLOUR_BGR = (0, 200, 0)


def draw_detections(image_bgr, boxes, scores):
    """Copy of image_bgr [H, W, 3] with boxes [N, 4] XYXY and their scores [N] drawn."""
    canvas = np.ascontiguousarray(image_bgr).copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for (x1, y1, x2, y2), score in zip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), scores):
        top_left, bottom_right = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(canvas, top_left, bottom_right, BOX_COLOUR_BGR, thickness)
        cv2.putText(canvas, f"{float(score):.2f}", (top_left[0], max(top_left[1] - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thickness, BOX_COLOUR_BGR, thickness, cv2.LINE_AA)
    return canvas


def crop_box(image, box):
    """The pixels of `image` [H, W, 3] covering XYXY `box`: edges widened to whole pixels and clipped
    to the image, at least 1 x 1 (a degenerate detection still shows where it is)."""
    height, width = image.shape[:2]
    x1, y1 = int(np.clip(np.floor(box[0]), 0, width - 1)), int(np.clip(np.floor(box[1]), 0, height - 1))
    x2, y2 = int(np.clip(np.ceil(box[2]), x1 + 1, width)), int(np.clip(np.ceil(box[3]), y1 + 1, height))
    return image[y1:y2, x1:x2]


def _show(ax, image_bgr, box=None, title=None):
    ax.imshow(image_bgr[:, :, ::-1])
    if box is not None:
        x1, y1, x2, y2 = box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="magenta", linewidth=2))
    if title:
        ax.set_title(title, fontsize=9)
    ax.axis("off")


def save_montage(query_image_bgr, query_box, hits, hit_images_bgr, path, panel_height=3.0):
    """PNG at `path` in two rows, the way a person checks a match: on top the query person and each
    hit's person, cropped and enlarged to the panel (rank, similarity, frame); below each, its whole
    image with the box drawn, for context.

    query_box: XYXY in query_image_bgr; hits: list[SearchHit] best first; hit_images_bgr: their
    images, BGR uint8 [H, W, 3].
    """
    panels = 1 + len(hits)
    figure = Figure(figsize=(panel_height * 0.8 * panels, 2 * panel_height))
    crops, frames = figure.subplots(2, panels, squeeze=False)
    _show(crops[0], crop_box(query_image_bgr, query_box), title="query")
    _show(frames[0], query_image_bgr, query_box)
    for crop_ax, frame_ax, hit, image in zip(crops[1:], frames[1:], hits, hit_images_bgr):
        frame = "" if hit.frame is None else f" f{hit.frame}"
        _show(crop_ax, crop_box(image, hit.box), title=f"#{hit.rank}  sim {hit.similarity:.3f}{frame}")
        _show(frame_ax, image, hit.box)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
