"""PSDiff learns to detect and search on the learning SynthPS with the quickstart model as its frozen
teacher (configs/quick_schedules/psdiff_tiny_ddet_synthps.yaml, shortened, 1 sampling step), and its box losses fall.
Margins: docs/BENCHMARKS.md, "Learning tests"."""
import pytest

from learning_fixtures import QUERY_SET, assert_gains, assert_loss_falls, run_psdiff

# Measured gains (seeds 0 / 1): det AP 47.5 / 52.3, mAP 7.9 / 8.5, GT mAP 3.5 / 9.6 points. The GT mAP
# gain follows the teacher's quality (eq. 11), so only its sign is asserted.
DET_AP_GAIN = 0.25  # trained - untrained detection AP@0.5
MAP_GAIN = 0.04  # trained - untrained search mAP
GT_MAP_GAIN = 0.0  # trained - untrained GT mAP


@pytest.fixture(scope="module")
def psdiff_run(learning_data, quickstart_run):
    return run_psdiff(learning_data, quickstart_run)


@pytest.mark.slow
def test_psdiff_learns_to_detect_and_search(psdiff_run):
    assert_gains(psdiff_run, {"det/AP": DET_AP_GAIN, f"{QUERY_SET}/mAP": MAP_GAIN, f"{QUERY_SET}/gt_mAP": GT_MAP_GAIN})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["loss_giou", "loss_l1"])
def test_psdiff_box_losses_fall(psdiff_run, name):
    # Dynamic-k matches more predictions per GT as the boxes improve and every match adds to the
    # summed losses, so a term can rise while its value per match falls: loss_reid and, after its
    # first drop, loss_cls do so here.
    assert_loss_falls(psdiff_run, name, 0.7, min_records=5)
