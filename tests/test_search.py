"""PersonSearcher (index, incremental add, save/load, ranked search, video), tools/demo.py and tools/search.py.

Search behaviour is checked with `ColourBoxSearchModel`, a registered test meta-architecture whose
detections are the coloured rectangles of a grey scene and whose embedding of a box is its mean colour:
it makes rankings exact and shows that any meta-architecture with `pred_embeddings` works. The tools
run with a tiny random-weight model from configs/quick_schedules/quickstart.yaml.
"""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import Boxes, Instances
from torch import nn

from common import QUICK_SCHEDULES, REPO_ROOT, tiny_cfg
from ps_plugin.search import GalleryIndex, PersonSearcher

sys.path.insert(0, str(REPO_ROOT / "tools"))
import demo  # noqa: E402
import search  # noqa: E402

GREY = 128
# Scenes of 120 x 160 (H x W): per image, (BGR colour, XYXY box) of each painted person.
SCENES = {
    "a.png": [((0, 0, 255), (10, 20, 50, 100)), ((0, 255, 0), (90, 10, 140, 110))],
    "b.png": [((255, 0, 0), (20, 30, 60, 110)), ((0, 255, 255), (100, 20, 150, 100))],
    "c.png": [((40, 40, 210), (60, 10, 100, 90))],
}
QUICK_OPTS = ["PS.BACKBONE.WEIGHTS", "", "PS.BACKBONE.NAME", "mobilenetv2_050", "INPUT.MIN_SIZE_TEST", "64",
              "INPUT.MAX_SIZE_TEST", "96", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "MODEL.RPN.PRE_NMS_TOPK_TEST",
              "50", "MODEL.RPN.POST_NMS_TOPK_TEST", "10", "TEST.DETECTIONS_PER_IMAGE", "5"]


@META_ARCH_REGISTRY.register()
class ColourBoxSearchModel(nn.Module):
    """Test model: detections = non-grey connected regions (score 0.9); embedding = the box's mean colour."""

    def __init__(self, cfg):
        super().__init__()
        self.register_buffer("device_anchor", torch.zeros(0))

    @staticmethod
    def _embed(image, boxes):
        """image [3, H, W] float; boxes [K, 4] in its coordinates -> unit mean colours [K, 3]."""
        rows = [image[:, int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))].mean(dim=(1, 2))
                for x1, y1, x2, y2 in boxes]
        return nn.functional.normalize(torch.stack(rows), dim=1) if rows else torch.zeros(0, 3)

    def forward(self, batched_inputs):
        return [self._infer(x) for x in batched_inputs]

    def _infer(self, x):
        image = x["image"].float()
        if "query_boxes" in x:
            return {"query_embeddings": self._embed(image, x["query_boxes"].tolist())}
        mask = ((image - GREY).abs().amax(dim=0) > 40).numpy().astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        regions = [[s[0], s[1], s[0] + s[2], s[1] + s[3]] for s in stats[1:] if s[4] > 20]
        boxes = torch.tensor(regions, dtype=torch.float32).reshape(-1, 4)
        instances = Instances((x["height"], x["width"]))
        scale = torch.tensor([x["width"] / image.shape[2], x["height"] / image.shape[1]] * 2)
        instances.pred_boxes = Boxes(boxes * scale)
        instances.scores = torch.full((len(boxes),), 0.9)
        instances.pred_classes = torch.zeros(len(boxes), dtype=torch.int64)
        instances.pred_embeddings = self._embed(image, boxes.tolist())
        return {"instances": instances}


def paint(path, people, size=(120, 160)):
    image = np.full((*size, 3), GREY, dtype=np.uint8)
    for colour, (x1, y1, x2, y2) in people:
        image[y1:y2, x1:x2] = colour
    cv2.imwrite(str(path), image)
    return image


@pytest.fixture
def gallery(tmp_path):
    folder = tmp_path / "gallery"
    folder.mkdir()
    for name, people in SCENES.items():
        paint(folder / name, people)
    return folder


def colour_searcher(index_dir=None, weights="", opts=(), allow_untrained=True, **kwargs):
    """PersonSearcher of ColourBoxSearchModel; `opts`: further KEY VALUE overrides; kwargs: PersonSearcher's."""
    cfg = tiny_cfg(QUICK_SCHEDULES / "quickstart.yaml", MODEL__META_ARCHITECTURE="ColourBoxSearchModel", MODEL__WEIGHTS=weights,
                   PS__BACKBONE__WEIGHTS="", INPUT__MIN_SIZE_TEST=96, INPUT__MAX_SIZE_TEST=128)
    cfg.merge_from_list(list(opts))
    return PersonSearcher.from_config(cfg, index_dir=index_dir, allow_untrained=allow_untrained, **kwargs)


def test_index_incremental_save_load_and_exact_query(gallery, tmp_path):
    index_dir = str(tmp_path / "index")
    searcher = colour_searcher(index_dir)
    assert searcher.index_images([gallery / "a.png", gallery / "b.png"], progress=False) == 2
    assert searcher.index_images(gallery, progress=False) == 1  # a.png and b.png are skipped
    assert searcher.index_images(str(gallery / "*.png"), progress=False) == 0
    assert len(searcher.index) == 3 and searcher.index.num_detections == 5
    a_boxes = sorted(searcher.index.arrays()[0][:2].tolist())
    np.testing.assert_allclose(a_boxes, [box for _, box in SCENES["a.png"]], atol=2)  # original image coordinates
    searcher.save()

    reloaded = colour_searcher(index_dir)
    assert [e["key"] for e in reloaded.index.entries] == [e["key"] for e in searcher.index.entries]
    assert reloaded.index.entries[1]["height"] == 120 and reloaded.index.entries[1]["width"] == 160
    for saved, loaded in zip(searcher.index.arrays(), reloaded.index.arrays()):
        np.testing.assert_array_equal(saved, loaded)

    blue_box = SCENES["b.png"][0][1]
    hits = reloaded.search(gallery / "b.png", blue_box, top_k=10)
    assert len(hits) == 5 and [h.rank for h in hits] == [1, 2, 3, 4, 5]
    similarities = [h.similarity for h in hits]
    assert similarities == sorted(similarities, reverse=True)
    # the query box, moved into the resized image like the pixels, embeds exactly like its detection
    assert Path(hits[0].image).name == "b.png" and hits[0].frame is None
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(hits[0].box, blue_box, atol=2)
    assert hits[1].similarity < 0.9
    red_hits = reloaded.search(gallery / "a.png", SCENES["a.png"][0][1], top_k=2)
    assert [Path(h.image).name for h in red_hits] == ["a.png", "c.png"]  # pure red, then dark red
    assert reloaded.search(gallery / "a.png", SCENES["a.png"][0][1], min_score=0.95) == []


def test_video_frames_are_indexed_every_kth_and_hits_name_the_frame(tmp_path):
    video = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (160, 120))
    frames = []
    for t in range(6):
        frames.append(paint(tmp_path / "frame.png", [((0, 45 * t, 255 - 30 * t), (10 + 15 * t, 20, 40 + 15 * t, 100))]))
        writer.write(frames[-1])
    writer.release()
    searcher = colour_searcher()
    assert searcher.index_video(str(video), every=2, progress=False) == 3
    assert searcher.index_video(str(video), every=1, progress=False) == 3  # frames 1, 3, 5 are new
    assert sorted(e["frame"] for e in searcher.index.entries) == list(range(6))
    hits = searcher.search(frames[4], (70, 20, 100, 100), top_k=6)
    assert len(hits) == 6 and all(Path(h.image).name == "walk.avi" for h in hits)
    assert hits[0].frame == 4 and abs(hits[0].box[0] - 70) <= 3  # each frame has its own colour
    assert searcher.load_image(hits[0]).shape == (120, 160, 3)


def test_clear_errors(gallery, tmp_path):
    searcher = colour_searcher()
    with pytest.raises(ValueError, match="index is empty"):
        searcher.search(gallery / "a.png", (10, 20, 50, 100))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(OSError, match="broken.jpg"):
        searcher.index_images([bad], progress=False, strict=True)
    with pytest.raises(OSError, match="missing.avi"):
        searcher.index_video(str(tmp_path / "missing.avi"), progress=False)
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        searcher.index_images(str(tmp_path / "nothing_here" / "*.jpg"), progress=False)
    searcher.index_images(gallery, progress=False)
    with pytest.raises(ValueError, match="inside the 160x120"):
        searcher.search(gallery / "a.png", (10, 20, 500, 100))
    with pytest.raises(FileNotFoundError, match="No gallery index"):
        GalleryIndex.load(str(tmp_path / "no_index"))


def test_model_without_embeddings_is_rejected(gallery):
    cfg = tiny_cfg(QUICK_SCHEDULES / "quickstart.yaml", PS__BACKBONE__WEIGHTS="", MODEL__META_ARCHITECTURE="GeneralizedRCNN",
                   MODEL__ROI_HEADS__NAME="StandardROIHeads", INPUT__MIN_SIZE_TEST=64, INPUT__MAX_SIZE_TEST=96)
    searcher = PersonSearcher.from_config(cfg, allow_untrained=True)
    with pytest.raises(TypeError, match="pred_embeddings"):
        searcher.index_images(gallery / "a.png", progress=False)


def test_demo_writes_annotated_images(gallery, tmp_path):
    out = tmp_path / "demo"
    images = [str(gallery / "a.png"), str(gallery / "b.png")]
    argv = ["--config-file", str(QUICK_SCHEDULES / "quickstart.yaml"), "--input", *images,
            "--output", str(out), "--confidence-threshold", "0.0", "--allow-untrained", *QUICK_OPTS]
    written = demo.main(demo.get_parser().parse_args(argv))
    assert sorted(Path(p).name for p in written) == ["a.png", "b.png"]
    annotated, original = cv2.imread(str(out / "a.png")), cv2.imread(str(gallery / "a.png"))
    assert annotated.shape == original.shape and (annotated != original).any()  # boxes drawn (threshold 0)


def test_search_cli_writes_montage_and_hits(gallery, tmp_path):
    out = tmp_path / "search"
    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), cv2.imread(str(gallery / "b.png"))[30:110, 20:60])
    argv = ["--config-file", str(QUICK_SCHEDULES / "quickstart.yaml"), "--query", str(crop), "--gallery", str(gallery),
            "--output", str(out), "--top-k", "3", "--min-score", "0", "--allow-untrained", *QUICK_OPTS]
    hits = search.main(search.get_parser().parse_args(argv))
    assert len(hits) == 3
    report = json.loads((out / "search_hits.json").read_text())
    assert report["query"]["box"] == [0.0, 0.0, 40.0, 80.0]
    assert [h["rank"] for h in report["hits"]] == [1, 2, 3]
    assert [h["similarity"] for h in report["hits"]] == sorted((h["similarity"] for h in report["hits"]), reverse=True)
    montage = cv2.imread(str(out / "search_montage.png"))
    assert montage is not None and montage.shape[1] > montage.shape[0]
    assert len(GalleryIndex.load(str(out / "index"))) == 3  # the index is kept for the next run
