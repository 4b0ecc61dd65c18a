"""The original CUHK03 release (cuhk-03.mat, MATLAB v7.3) read from a fixture in its real layout:
cells per camera pair, empty cells (flagged and bare), transposed image storage, test splits."""
import logging
import os

import numpy as np
import pytest
from PIL import Image

from format_fixtures import write_cuhk03_mat
from ps_plugin.data.datasets.crops import CROP_BOX, INSTANCE_IDS
from ps_plugin.data.datasets.cuhk03 import load_cuhk03_mat


def crop(code, height=6, width=4):
    """[H, W, 3] uint8 whose pixel (y, x, c) = code + 10 y + x + 60 c: orientation and channels visible."""
    y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(3), indexing="ij")
    return (code + 10 * y + x + 60 * c).astype(np.uint8)


def row(filled, bare=()):
    """10 cells of one person: crop(cell) at `filled`, bare empty cells at `bare`, flagged empties elsewhere."""
    return [crop(cell) if cell in filled else ("bare empty" if cell in bare else None) for cell in range(10)]


# labeled: pair 1 has persons 1-3, pair 2 persons 1-2; testsets{1} = persons (1, 2) and (2, 1).
LABELED = [
    [row({0, 1, 5}, bare={2}), row({0, 5}), row({2})],
    [row({0, 6}), row({3, 9}, bare={0})],
]
DETECTED = [[row({7}), row(set()), row(set())], [row(set()), row({1})]]
TESTSETS = [[[1, 2], [2, 1]], [[1, 1]]]


@pytest.fixture
def mat_file(tmp_path):
    path = tmp_path / "cuhk03_release" / "cuhk-03.mat"
    write_cuhk03_mat(str(path), {"labeled": LABELED, "detected": DETECTED}, TESTSETS)
    return path


def _pids(records):
    return [r["annotations"][0]["person_id"] for r in records]


def test_classic_train_split_identities_cameras_and_pixels(mat_file, caplog):
    with caplog.at_level(logging.INFO, logger="ps_plugin.data.datasets.cuhk03"):
        records = load_cuhk03_mat(str(mat_file), "labeled")
    assert "Decoding the 'labeled' crops" in caplog.text
    # Persons (1,1), (1,3), (2,2) remain: ids 0, 1, 2; cameras 2 (pair - 1) + cell // 5.
    assert [r["image_id"] for r in records] == [
        "1_0001_01.png", "1_0001_02.png", "1_0001_06.png", "1_0003_03.png", "2_0002_04.png", "2_0002_10.png",
    ]
    assert _pids(records) == [0, 0, 0, 1, 2, 2]
    assert [r["camera_id"] for r in records] == [0, 0, 1, 0, 2, 3]
    assert all((r["height"], r["width"]) == (6, 4) and r[CROP_BOX] == [0, 0, 4, 6] for r in records)
    assert not any(r.get(INSTANCE_IDS) for r in records)
    np.testing.assert_array_equal(np.asarray(Image.open(records[2]["file_name"])), crop(5))
    assert (mat_file.parent / "images_labeled" / "index.json").is_file()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ps_plugin.data.datasets.cuhk03"):
        everyone = load_cuhk03_mat(str(mat_file), "labeled", split="all")
    assert "Decoding" not in caplog.text  # the decoded crops are read back
    assert _pids(everyone) == [0, 0, 0, 1, 1, 2, 3, 3, 4, 4]
    detected = load_cuhk03_mat(str(mat_file), "detected", split="all")
    assert [r["image_id"] for r in detected] == ["1_0001_08.png", "2_0002_02.png"]
    assert [r["camera_id"] for r in detected] == [1, 2] and _pids(detected) == [0, 1]

    os.utime(mat_file, ns=(0, 10**9))  # a changed release is decoded again
    with caplog.at_level(logging.INFO, logger="ps_plugin.data.datasets.cuhk03"):
        assert len(load_cuhk03_mat(str(mat_file), "labeled")) == len(records)
    assert "Decoding the 'labeled' crops" in caplog.text


def test_missing_corrupt_and_wrong_files_name_the_file_and_the_fix(tmp_path, mat_file):
    with pytest.raises(FileNotFoundError, match="cuhk03_release/missing.mat'. Unpack cuhk03_release.zip"):
        load_cuhk03_mat(str(tmp_path / "cuhk03_release" / "missing.mat"), "labeled")
    mat_file.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(ValueError, match="cuhk-03.mat: not a MATLAB v7.3 \\(HDF5\\) .mat file.*Unpack cuhk03_release.zip"):
        load_cuhk03_mat(str(mat_file), "labeled")
    write_cuhk03_mat(str(mat_file), {"labeled": LABELED}, TESTSETS)
    with pytest.raises(ValueError, match="cuhk-03.mat: no MATLAB cell array 'detected'"):
        load_cuhk03_mat(str(mat_file), "detected")
    write_cuhk03_mat(str(mat_file), {"labeled": [[[crop(0).astype(np.float64)] + row(set())[1:]]]}, TESTSETS)
    with pytest.raises(ValueError, match=r"cuhk-03.mat: labeled\{1\}\(1, 1\): expected an H x W x 3 uint8 image, got a float64"):
        load_cuhk03_mat(str(mat_file), "labeled", cache_dir=str(tmp_path / "fresh"))
    write_cuhk03_mat(str(mat_file), {"labeled": [[row(set(), bare={0})] * 2]}, [[[1, 1], [1, 2]]])
    with pytest.raises(ValueError, match="no 'labeled' crop in split 'train'"):
        load_cuhk03_mat(str(mat_file), "labeled")
