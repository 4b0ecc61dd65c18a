"""The colour-histogram baseline: exact on identical crops, and far from solving SynthPS."""
import numpy as np
import pytest
from detectron2.data import DatasetCatalog

from ps_plugin.data.datasets.synthps import register_all_synthps
from ps_plugin.data.synthps import generate_synthps
from ps_plugin.data.synthps.config import SIZES
from ps_plugin.evaluation.colour_histogram import colour_histogram_search, hsv_histograms


def test_histograms_are_unit_and_compare_crops_by_colour():
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[:, :20] = (0, 0, 255)    # red (BGR)
    image[:, 20:40] = (0, 0, 250)  # almost the same red
    image[:, 40:] = (255, 0, 0)    # blue
    feats = hsv_histograms(image, [[0, 0, 20, 40], [20, 0, 40, 40], [40, 0, 60, 40]])
    assert feats.shape == (3, 8 * 8 * 4)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-6)
    assert feats[0] @ feats[1] == pytest.approx(1.0, abs=1e-6)
    assert feats[0] @ feats[2] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_colour_histograms_do_not_solve_synthps(tmp_path):
    size = SIZES["default"].scaled(num_train_images=10, num_gallery_images=60, gallery_size=20)
    generate_synthps(tmp_path, seed=1, size=size)
    register_all_synthps(root=str(tmp_path), prefix="colourtest")
    evaluation = colour_histogram_search(DatasetCatalog.get("colourtest_gallery"), DatasetCatalog.get("colourtest_query"))
    summary = evaluation.summary()
    assert len(evaluation.ap) >= 10
    assert 0.0 < summary["mAP"] < 0.5, summary
