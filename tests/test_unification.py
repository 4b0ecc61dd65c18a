"""Data unification in the mapper: a crop record (a crop folder image, or a person box of a scene)
becomes a canvas whose box holds the person; scene records pass unchanged; both views share it."""
import numpy as np
import pytest

from common import small_input_cfg
from ps_plugin.data.datasets.crops import make_crop_record
from ps_plugin.data.unification import HybridDatasetMapper, build_unification
from ps_plugin.structures import VIEWS
from test_mapper import PID_COLOURS, SCENE_BOXES, box_colour, scene_record


def mapper(num_views=1, **pretrain):
    cfg = small_input_cfg(FLIP_PROB=0.0, NUM_VIEWS=num_views)
    cfg.PS.PRETRAIN.CANVAS_SIZE = (200, 300)
    for key, value in pretrain.items():
        cfg.PS.PRETRAIN[key] = value
    return HybridDatasetMapper(cfg, is_train=True)


@pytest.mark.parametrize("unification", ["expand_resize", "random_paste"])
def test_a_person_box_of_a_scene_becomes_a_canvas_around_that_person(tmp_path, unification):
    np.random.seed(0)
    scene = scene_record(tmp_path)
    crop = make_crop_record(scene["file_name"], "scene.png#3", 5, crop_box=SCENE_BOXES[3], height=240, width=320)
    view = mapper(UNIFICATION=unification, CANVAS_RATIO=(2.0, 3.0))(crop)
    # Canvas 200 x 300, then INPUT's resize to short side 200: unchanged.
    assert tuple(view["image"].shape[1:]) == (200, 300)
    (box,) = view["instances"].gt_boxes.tensor.tolist()
    assert view["instances"].gt_pids.tolist() == [5]
    assert box_colour(view["image"], box) == PID_COLOURS[2]  # the person of box 3
    if unification == "random_paste":  # pasted at its own size: 50 x 110
        np.testing.assert_allclose([box[2] - box[0], box[3] - box[1]], [50, 110], atol=1e-4)
    else:  # a canvas 2-3 x the crop on each side
        assert 1 / 3 - 0.01 <= (box[2] - box[0]) / 300 <= 1 / 2 + 0.01
        assert 1 / 3 - 0.01 <= (box[3] - box[1]) / 200 <= 1 / 2 + 0.01


def test_two_views_show_the_same_canvas_and_scene_records_are_untouched(tmp_path):
    np.random.seed(1)
    scene = scene_record(tmp_path)
    crop = make_crop_record(scene["file_name"], "scene.png#0", 0, crop_box=SCENE_BOXES[0], height=240, width=320)
    views = mapper(num_views=2)(crop)[VIEWS]
    assert views[0]["instances"].gt_boxes.tensor.tolist() == views[1]["instances"].gt_boxes.tensor.tolist()
    plain = mapper()(scene)
    assert len(plain["instances"]) == len(SCENE_BOXES)
    assert tuple(plain["image"].shape[1:]) == (200, 267)  # INPUT's resize of the 240 x 320 scene only


def test_unknown_unification_and_a_zero_size_crop_are_errors(tmp_path):
    cfg = small_input_cfg()
    cfg.PS.PRETRAIN.UNIFICATION = "stretch"
    with pytest.raises(ValueError, match="PS.PRETRAIN.UNIFICATION = 'stretch'"):
        build_unification(cfg)
    scene = scene_record(tmp_path)
    with pytest.raises(ValueError, match="is empty"):
        make_crop_record(scene["file_name"], "x", 0, crop_box=[400, 10, 420, 50], height=240, width=320)
    crop = make_crop_record(scene["file_name"], "x", 0, crop_box=[10, 10, 30, 50], height=240, width=320)
    crop["crop_box"] = [30.0, 10.0, 30.0, 50.0]
    with pytest.raises(ValueError, match="zero-size person crop"):
        mapper()(crop)


def test_trainer_mixes_datasets_by_ratio_and_unifies_crops(tmp_path):
    from ps_plugin.engine.trainer import training_mapper, training_stream

    cfg = small_input_cfg()
    cfg.DATASETS.TRAIN = ("scenes", "crops")
    scene = dict(scene_record(tmp_path), dataset_name="scenes")
    crop = dict(make_crop_record(scene["file_name"], "c", 0, crop_box=SCENE_BOXES[0], height=240, width=320),
                dataset_name="crops")
    assert "dataset_id" not in training_stream([scene, crop], cfg)[0]
    assert type(training_mapper([scene], cfg)).__name__ == "PersonSearchDatasetMapper"
    cfg.PS.DATA.TRAIN_RATIOS = (3, 1)
    stream = training_stream([scene, crop], cfg)
    assert [stream[p]["dataset_id"] for p in range(8)].count(1) == 2
    assert {stream[p]["image_id"] for p in range(8) if stream[p]["dataset_id"] == 1} == {"c"}
    assert isinstance(training_mapper([scene, crop], cfg), HybridDatasetMapper)
