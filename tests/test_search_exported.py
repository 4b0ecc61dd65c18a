"""PersonSearcher and tools/search.py with an exported model (ps_plugin.search.ExportedPredictor):
a SynthPS gallery indexed with the ONNX (or TorchScript) export and with PyTorch holds the same boxes, scores and
embeddings (within 1e-3), a query by box ranks it the same, and the fingerprint keeps the two
models' indexes apart."""
import json
import shutil

import numpy as np
import pytest
import torch

from common import QUICK_SCHEDULES, load_tool, tiny_cfg
from ps_plugin.export import write_export
from ps_plugin.search import ExportedPredictor, PersonSearcher, PersonSearchPredictor, list_images
from test_export import ONNX_MISSING, TOLERANCE
from train_fixtures import tiny_synthps

pytestmark = pytest.mark.skipif(bool(ONNX_MISSING), reason=f"{ONNX_MISSING} not installed (tools/install_env.sh)")

# quickstart.yaml shrunk; random MobileNetV2-0.5 heads, detections scoring above 0.6 kept (about 45 per
# image, a different count in each), SynthPS 160 x 120 resized to 128 x 96
OPTS = ["PS.BACKBONE.NAME", "mobilenetv2_050", "PS.BACKBONE.WEIGHTS", "", "PS.REID.NUM_PIDS", "5",
        "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.6"]
NUM_IMAGES = 4


def config(*extra):
    cfg = tiny_cfg(QUICK_SCHEDULES / "quickstart.yaml")
    cfg.merge_from_list(OPTS + list(extra))
    return cfg


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(SynthPS gallery images, the export folder of the untrained model config() builds)."""
    root = tiny_synthps(tmp_path_factory.mktemp("synthps"))
    images = list_images(str(root / "images"))[:NUM_IMAGES]
    folder = tmp_path_factory.mktemp("export")
    trace_image = torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(0)) * 255
    write_export(PersonSearchPredictor(config()).model, config(), folder, ["onnx", "torchscript"], trace_image)
    return images, folder


@pytest.mark.parametrize("graph_file", ["gallery.onnx", "gallery.ts"])
def test_exported_index_and_ranking_equal_pytorch(exported, graph_file, tmp_path):
    images, folder = exported
    searchers = {
        "pytorch": PersonSearcher.from_config(config(), tmp_path / "pytorch", allow_untrained=True),
        "exported": PersonSearcher.from_config(config(), tmp_path / "exported", exported=folder / graph_file),
    }
    for searcher in searchers.values():
        assert searcher.index_images(images, progress=False) == NUM_IMAGES
    indexes = {name: searcher.index for name, searcher in searchers.items()}
    assert [e["count"] for e in indexes["exported"].entries] == [e["count"] for e in indexes["pytorch"].entries]
    assert len({e["count"] for e in indexes["exported"].entries}) > 1  # counts differ: none is frozen at the trace's
    for want, have in zip(indexes["pytorch"].arrays()[:3], indexes["exported"].arrays()[:3]):
        np.testing.assert_allclose(have, want, atol=TOLERANCE, rtol=0)  # boxes in original image coordinates
    assert indexes["exported"].arrays()[0][:, 2].max() > 128  # scaled back from the 128-wide resized image

    box = indexes["pytorch"].arrays()[0][indexes["pytorch"].entries[1]["first"]]  # a detection of image 1
    every = indexes["exported"].num_detections
    hits = {name: searcher.search(images[1], box, top_k=every, min_score=0) for name, searcher in searchers.items()}
    assert len(hits["exported"]) == every
    assert [h.image for h in hits["exported"]] == [h.image for h in hits["pytorch"]]  # the same ranking
    for field in ("box", "score", "similarity"):
        got, want = ([getattr(h, field) for h in hits[name]] for name in ("exported", "pytorch"))
        np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)
    assert hits["exported"][0].image == images[1] and hits["exported"][0].similarity == pytest.approx(1, abs=1e-3)

    searchers["exported"].save()
    with pytest.raises(ValueError, match=f"exported as {graph_file}"):  # the PyTorch model may not extend it
        PersonSearcher.from_config(config(), tmp_path / "exported", allow_untrained=True)
    with pytest.raises(ValueError, match="keys that differ: PS.REID.EMBED_DIM"):
        PersonSearcher.from_config(config("PS.REID.EMBED_DIM", "32"), exported=folder / graph_file)


def test_search_cli_with_exported_reuses_the_index_and_ranks_like_the_api(exported, tmp_path):
    images, folder = exported
    onnx_path = folder / "gallery.onnx"
    api = PersonSearcher.from_config(config(), tmp_path / "index", exported=onnx_path)
    api.index_images(images[:2], progress=False)
    api.save()
    search = load_tool("search")
    argv = ["--config-file", str(QUICK_SCHEDULES / "quickstart.yaml"), "--query", images[0], "--box", "20", "10",
            "70", "110", "--gallery", *images, "--index", str(tmp_path / "index"), "--output", str(tmp_path / "out"),
            "--top-k", "5", "--min-score", "0", "--exported", str(onnx_path), *OPTS]
    hits = search.main(search.get_parser().parse_args(argv))
    index = PersonSearcher.from_config(config(), tmp_path / "index", exported=onnx_path).index
    assert [e["source"] for e in index.entries] == images  # images 0-1 from the API run, 2-3 added by the CLI
    api.index_images(images, progress=False)
    expected = api.search(images[0], (20, 10, 70, 110), top_k=5, min_score=0)
    assert [h.to_dict() for h in hits] == [h.to_dict() for h in expected]
    assert json.loads((tmp_path / "out" / "search_hits.json").read_text())["hits"] == [h.to_dict() for h in hits]


def test_exported_predictor_refuses_files_it_cannot_vouch_for(exported, tmp_path):
    _, folder = exported
    with pytest.raises(ValueError, match="not an exported gallery graph"):
        ExportedPredictor(config(), folder / "query.onnx")
    copy = shutil.copytree(folder, tmp_path / "copy")
    with open(copy / "gallery.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="gallery.onnx' is not the file export.json lists"):
        ExportedPredictor(config(), copy / "gallery.onnx")
    (copy / "export.json").unlink()
    with pytest.raises(FileNotFoundError, match="export.json' is missing"):
        ExportedPredictor(config(), copy / "gallery.ts")
