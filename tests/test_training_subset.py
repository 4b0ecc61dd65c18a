"""PS.DATA.TRAIN_IMAGE_FRACTION: training on a fixed, nested random subset of each training set's images."""
import pytest
from detectron2.data import get_detection_dataset_dicts

from ps_plugin.data.identities import load_training_records, subsample_images
from train_fixtures import tiny_synthps, tiny_train_cfg

RECORDS = [{"image_id": i} for i in range(10)]


@pytest.fixture(scope="module")
def synthps_root(tmp_path_factory):
    return tiny_synthps(tmp_path_factory.mktemp("synthps"))


def ids(records):
    return [r["image_id"] for r in records]


def test_subset_size_order_and_nesting():
    fifth, three_fifths = subsample_images(RECORDS, 0.2, seed=0), subsample_images(RECORDS, 0.6, seed=0)
    assert len(fifth) == 2 and len(three_fifths) == 6
    assert ids(fifth) == sorted(ids(fifth)) and ids(three_fifths) == sorted(ids(three_fifths))
    assert set(ids(fifth)) <= set(ids(three_fifths))
    assert ids(subsample_images(RECORDS, 0.6, seed=0)) == ids(three_fifths)
    assert ids(subsample_images(RECORDS, 0.6, seed=1)) != ids(three_fifths)
    assert subsample_images(RECORDS, 1.0, seed=0) is RECORDS
    assert len(subsample_images(RECORDS, 0.01, seed=0)) == 1


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_a_fraction_outside_0_1_is_an_error_naming_the_key(fraction):
    with pytest.raises(ValueError, match="TRAIN_IMAGE_FRACTION"):
        subsample_images(RECORDS, fraction, seed=0)


def test_training_records_keep_half_the_images_and_only_their_identities(synthps_root, tmp_path):
    cfg = tiny_train_cfg(synthps_root, "subset", tmp_path)
    everything = get_detection_dataset_dicts(["subset_train"], filter_empty=False)
    cfg.PS.DATA.TRAIN_IMAGE_FRACTION = 0.5
    records, identities = load_training_records(cfg)
    assert len(records) == len(everything) // 2
    kept = {r["file_name"] for r in records}
    assert kept < {r["file_name"] for r in everything}
    # Identity rows are contiguous over the people seen in the kept images.
    rows = {a["person_id"] for r in records for a in r["annotations"] if a["person_id"] >= 0}
    assert rows == set(range(len(rows))) and identities.num_rows == len(rows)
    cfg.SEED = 123  # another training seed trains on the same images
    assert {r["file_name"] for r in load_training_records(cfg)[0]} == kept
