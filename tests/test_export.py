"""Exported gallery and query paths (ps_plugin.export): TorchScript trace and ONNX Runtime outputs equal
PyTorch's on images of other sizes (and box counts) than the trace input, for the quickstart and
realmini architectures."""
import importlib.util
import json

import pytest
import torch
from detectron2.data.detection_utils import read_image
from detectron2.modeling import build_model

from common import QUICK_SCHEDULES, SHARED_DATA, load_tool, tiny_cfg
from ps_plugin.config import setup_cfg
from ps_plugin.export import (
    GALLERY_OUTPUTS, GalleryGraph, OnnxGraph, QueryGraph, export_onnx, export_query_onnx, load_graph, trace_gallery,
    trace_query,
)
from ps_plugin.search import PersonSearchPredictor
from train_fixtures import tiny_synthps

TOLERANCE = 1e-3
TRACE_SIZE = (96, 128)
CONFIGS = ["quickstart.yaml", "baseline_mnv2_realmini.yaml"]
ONNX_MISSING = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]


def tiny_model(config_name):
    """The config's architecture with MobileNetV2-0.5 at random init; detections above score 0.3 so
    the images' detection counts differ from the trace input's."""
    cfg = tiny_cfg(
        QUICK_SCHEDULES / config_name,
        PS__BACKBONE__NAME="mobilenetv2_050",
        MODEL__ROI_HEADS__SCORE_THRESH_TEST=0.3,
        PS__REID__NUM_PIDS=5,
    )
    torch.manual_seed(0)
    return build_model(cfg).eval()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A tiny SynthPS scene (120 x 160), a crop of it (100 x 136) and, when ../shared/data has it, a
    realmini frame at a third of its size; all [3, H, W] float32 BGR."""
    root = tiny_synthps(tmp_path_factory.mktemp("synthps"))
    scene = torch.as_tensor(read_image(str(next((root / "images").rglob("*.jpg"))), format="BGR").copy())
    scene = scene.permute(2, 0, 1).float()
    found = [scene, scene[:, 7:107, 11:147].contiguous()]
    frames = sorted((SHARED_DATA / "realmini").rglob("*.jpg"))
    if frames:
        frame = torch.as_tensor(read_image(str(frames[0]), format="BGR").copy()).permute(2, 0, 1).float()
        found.append(frame[:, ::3, ::3].contiguous())
    return found


def trace_input():
    return torch.rand(3, *TRACE_SIZE, generator=torch.Generator().manual_seed(0)) * 255


def assert_close(expected, got, names):
    """Tuples of tensors `got` equal `expected` in shape and within TOLERANCE."""
    for name, want, have in zip(names, expected, got):
        have = torch.as_tensor(have)
        assert have.shape == want.shape, (name, have.shape, want.shape)
        assert torch.allclose(have, want, atol=TOLERANCE, rtol=0), (name, (have - want).abs().max())


def assert_close_to_pytorch(model, run, images):
    """`run(image)` -> (boxes, scores, embeddings) equals GalleryGraph(model) within TOLERANCE."""
    reference = GalleryGraph(model)
    counts = set()
    for image in images:
        assert tuple(image.shape[1:]) != TRACE_SIZE
        with torch.no_grad():
            expected = reference(image)
            got = run(image)
        counts.add(len(expected[0]))
        assert_close(expected, got, GALLERY_OUTPUTS)
    assert len(counts) > 1, f"every image had {counts} detections: the test would not see a frozen count"


def query_boxes(image, count):
    """`count` boxes [count, 4] XYXY inside image [3, H, W], each a different part of it."""
    height, width = image.shape[1:]
    return torch.tensor([[width * i / (2 * count), height * i / (3 * count), width / 2 + width * i / (2 * count),
                          height - 1] for i in range(count)])


def assert_query_close_to_pytorch(model, run, images):
    """`run(image, boxes)` -> (embeddings,) equals QueryGraph(model) for 1 and 3 boxes per image."""
    reference = QueryGraph(model)
    for image in images:
        for count in (1, 3):
            boxes = query_boxes(image, count)
            with torch.no_grad():
                assert_close(reference(image, boxes), run(image, boxes), ["query embeddings"])


@pytest.mark.parametrize("config_name", CONFIGS)
def test_torchscript_trace_matches_pytorch_on_other_image_sizes(config_name, images):
    model = tiny_model(config_name)
    assert_close_to_pytorch(model, trace_gallery(model, trace_input()), images)
    trace_boxes = query_boxes(trace_input(), 2)
    assert_query_close_to_pytorch(model, trace_query(model, trace_input(), trace_boxes), images)


@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"{ONNX_MISSING} not installed (tools/install_env.sh installs them)")
@pytest.mark.parametrize("config_name", CONFIGS)
def test_onnx_runtime_matches_pytorch_on_other_image_sizes(config_name, images, tmp_path):
    model = tiny_model(config_name)
    assert_close_to_pytorch(model, OnnxGraph(export_onnx(model, trace_input(), tmp_path / "g.onnx"), 1), images)
    query = export_query_onnx(model, trace_input(), query_boxes(trace_input(), 2), tmp_path / "q.onnx")
    assert_query_close_to_pytorch(model, OnnxGraph(query, 1), images)


def test_export_tool_writes_files_that_reload_and_match_pytorch(tmp_path):
    export_model = load_tool("export_model")
    args = export_model.get_parser().parse_args([
        "--config-file", str(QUICK_SCHEDULES / "quickstart.yaml"), "--output", str(tmp_path), "--allow-untrained",
        "PS.BACKBONE.NAME", "mobilenetv2_050", "PS.BACKBONE.WEIGHTS", "", "PS.REID.NUM_PIDS", "5",
        "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160",
    ] + (["--format", "torchscript"] if ONNX_MISSING else []))
    export_model.main(args)
    model = PersonSearchPredictor(setup_cfg(args)).model
    image = torch.rand(3, 120, 100, generator=torch.Generator().manual_seed(3)) * 255
    manifest = json.loads((tmp_path / "export.json").read_text())
    suffixes = [".ts"] + ([] if ONNX_MISSING else [".onnx"])
    names = [f"{graph}{suffix}" for graph in ("gallery", "query") for suffix in suffixes]
    assert sorted(manifest["files"]) == sorted(names)
    assert manifest["fingerprint"]["weights_sha256"] == "untrained-seed0"
    for suffix in suffixes:
        assert_close_to_pytorch(model, load_graph(tmp_path / f"gallery{suffix}", 1), [image, image[:, 8:, :88]])
        assert_query_close_to_pytorch(model, load_graph(tmp_path / f"query{suffix}", 1), [image])
