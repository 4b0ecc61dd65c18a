"""Drawings for the demo and the search CLI: detections on an image, and the ranked search montage."""
import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = ["draw_detections", "save_montage"]

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


def save_montage(query_crop_bgr, hits, hit_images_bgr, path, panel_height=3.0):
    """PNG at `path`: the query crop, then each hit's image with its box, rank and similarity.

    hits: list[SearchHit] best first; hit_images_bgr: their images, BGR uint8 [H, W, 3].
    """
    panels = 1 + len(hits)
    figure = Figure(figsize=(panel_height * 0.8 * panels, panel_height))
    axes = figure.subplots(1, panels, squeeze=False)[0]
    axes[0].imshow(query_crop_bgr[:, :, ::-1])
    axes[0].set_title("query", fontsize=9)
    for ax, hit, image in zip(axes[1:], hits, hit_images_bgr):
        ax.imshow(image[:, :, ::-1])
        x1, y1, x2, y2 = hit.box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="magenta", linewidth=2))
        frame = "" if hit.frame is None else f" f{hit.frame}"
        ax.set_title(f"#{hit.rank}  sim {hit.similarity:.3f}{frame}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
