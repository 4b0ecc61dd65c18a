"""Person search on your own footage: index a gallery of images or video frames, query with a person box."""
from .index import GalleryIndex, image_key
from .predictor import PersonSearchPredictor, model_fingerprint, require_weights
from .exported import ExportedPredictor  # after .predictor: ps_plugin.export imports it
from .searcher import PersonSearcher, SearchHit
from .sources import iter_video_frames, list_images, read_image_bgr, read_video_frame
from .visualize import crop_box, draw_detections, save_montage

__all__ = [
    "ExportedPredictor", "GalleryIndex", "image_key", "PersonSearchPredictor", "model_fingerprint", "require_weights",
    "PersonSearcher", "SearchHit", "iter_video_frames", "list_images", "read_image_bgr", "read_video_frame", "crop_box",
    "draw_detections", "save_montage",
]
