"""`render_preview`: a PNG mosaic of a few SynthPS scenes with their boxes, to eyeball the data."""
import os

import cv2
import numpy as np
from PIL import Image

from ..datasets.synthps import load_synthps

LABELED_BGR, UNLABELED_BGR = (60, 220, 60), (0, 140, 255)


def _draw_boxes(record):
    """BGR uint8 image of a record with labeled boxes (green, person id) and unlabeled ones (orange)."""
    image = cv2.imread(record["file_name"])
    if image is None:
        raise FileNotFoundError(f"Cannot read SynthPS image '{record['file_name']}'. Regenerate the dataset.")
    for annotation in record["annotations"]:
        x1, y1, x2, y2 = (int(round(v)) for v in annotation["bbox"])
        labeled = annotation["person_id"] >= 0
        colour = LABELED_BGR if labeled else UNLABELED_BGR
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colour, 1)
        text = str(annotation["person_id"]) if labeled else "-1"
        cv2.putText(image, text, (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return image


def render_preview(root, out_png, num_scenes=6, columns=3, tile_size=(480, 360)):
    """Write a `columns`-wide mosaic of the first `num_scenes` gallery scenes of `root` to `out_png`.

    Each tile is a scene resized to `tile_size` (width, height) with its boxes. Returns out_png.
    """
    records = load_synthps(root, "gallery")[:num_scenes]
    rows = -(-len(records) // columns)
    width, height = tile_size
    mosaic = np.zeros((rows * height, columns * width, 3), dtype=np.uint8)
    for index, record in enumerate(records):
        tile = cv2.resize(_draw_boxes(record), tile_size, interpolation=cv2.INTER_AREA)
        row, col = divmod(index, columns)
        mosaic[row * height : (row + 1) * height, col * width : (col + 1) * width] = tile
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    Image.fromarray(mosaic[..., ::-1]).save(out_png)
    return out_png
