"""Writers of tiny datasets in the original on-disk formats, for loader tests.

Each `write_<dataset>(root)` builds `<root>/<dataset>/` with blank JPEGs (PIL) and annotation
files written by scipy.io.savemat in the nesting loadmat returns for the real files (struct
arrays as numpy structured arrays, cell arrays as object arrays, boxes as uint16). The
contents are small enough to spell out in the tests that use them; the docstrings list them.
"""
import os

import numpy as np
from PIL import Image
from scipy.io import savemat


def write_jpg(path, width, height):
    """A blank width x height JPEG at `path` (folders created)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (width, height), color=(90, 120, 150)).save(path)


def _uint8(value):
    """A MATLAB scalar stored as uint8 [1, 1] (nAppear, ishard)."""
    return np.array([[value]], dtype=np.uint8)


def _uint16_box(box):
    """[x, y, w, h] -> uint16 [1, 4] as stored in CUHK-SYSU, or an empty [1, 0] double for None (absent)."""
    return np.zeros((1, 0)) if box is None else np.array([box], dtype=np.uint16)


def _struct_array(fields, rows):
    """A MATLAB 1xN struct array: fields list[str], rows list of tuples (one value per field)."""
    array = np.zeros((1, len(rows)), dtype=[(name, object) for name in fields])
    for column, row in enumerate(rows):
        for name, value in zip(fields, row):
            array[0, column][name] = value
    return array


def _cell_column(values):
    """A MATLAB Nx1 cell array holding `values`."""
    cells = np.empty((len(values), 1), dtype=object)
    for row, value in enumerate(values):
        cells[row, 0] = value
    return cells


def write_cuhk_sysu_images(path, images):
    """Images.mat: images = [(imname, [[x, y, w, h], ...])]; Img(i) = (imname, nAppear, 1xN (idlocate, ishard))."""
    rows = []
    for imname, boxes in images:
        located = _struct_array(["idlocate", "ishard"], [(_uint16_box(b), _uint8(0)) for b in boxes])
        rows.append((imname, _uint8(len(boxes)), located if boxes else np.zeros((0, 0))))
    savemat(path, {"Img": _struct_array(["imname", "nAppear", "idlocate"], rows)})


def write_cuhk_sysu_train(path, identities):
    """Train.mat: identities = [(idname, [(imname, [x, y, w, h]), ...])]; Nx1 cell of 1x1 (idname, nAppear, scene)."""
    cells = []
    for idname, scenes in identities:
        scene = _struct_array(["imname", "idlocate", "ishard"], [(im, _uint16_box(b), _uint8(0)) for im, b in scenes])
        cells.append(_struct_array(["idname", "nAppear", "scene"], [(idname, _uint8(len(scenes)), scene)]))
    savemat(path, {"Train": _cell_column(cells)})


def write_cuhk_sysu_protocol(path, gallery_size, queries):
    """TestG{gallery_size}.mat: queries = [(imname, [x, y, w, h], idname, [(gallery imname, box or None), ...])].

    Like the real files: 1xQ struct (Query, Gallery); Query 1x1 (imname, idlocate, ishard, idname);
    Gallery 1xN (imname, idlocate, ishard) where an empty [1, 0] idlocate marks the person absent.
    """
    hard = _uint8(0)
    rows = []
    for imname, box, idname, gallery in queries:
        query = _struct_array(["imname", "idlocate", "ishard", "idname"], [(imname, _uint16_box(box), hard, idname)])
        entries = _struct_array(
            ["imname", "idlocate", "ishard"],
            [(im, _uint16_box(b), hard if b is not None else np.zeros((1, 0))) for im, b in gallery],
        )
        rows.append((query, entries))
    savemat(path, {f"TestG{gallery_size}": _struct_array(["Query", "Gallery"], rows)})


CUHK_SYSU_IMAGE_SIZES = {
    "s1.jpg": (400, 320), "s2.jpg": (200, 150), "s3.jpg": (120, 90),
    "s4.jpg": (400, 320), "s5.jpg": (400, 320), "s6.jpg": (400, 320), "s7.jpg": (400, 320),
}  # imname -> (width, height)


def write_cuhk_sysu(root):
    """`<root>/cuhk_sysu/`: train s1-s3, test pool s4-s7. Returns that folder.

    Boxes (x, y, w, h), identity in brackets:
        s1 400x320: [50, 40, 300, 250] (p1; w*h = 75000 overflows uint16), [5, 5, 20, 40]
        s2 200x150: [10, 10, 30, 60] (p2), [60, 20, 40, 100] (p1), [180, 100, 40, 80] (clipped),
                    [250, 10, 20, 20] (outside: dropped)
        s3 120x90:  no one
        s4: [20, 30, 40, 90] (p10, query 0), [100, 20, 30, 70]
        s5: [60, 40, 300, 250] (p10), [10, 10, 30, 60] (p11)
        s6: [30, 20, 40, 100] (p11, query 1)
        s7: [50, 50, 30, 60]
    TestG50: query 0 gallery (s5 present, s6 absent, s7 absent); query 1 (s5 present, s4, s7 absent).
    TestG100: query 0 gallery (s7 absent, s5 present, s6 absent, s7 absent again); query 1 (s5, s4).
    """
    base = os.path.join(root, "cuhk_sysu")
    for imname, (width, height) in CUHK_SYSU_IMAGE_SIZES.items():
        write_jpg(os.path.join(base, "Image", "SSM", imname), width, height)
    annotation = os.path.join(base, "annotation")
    protocols = os.path.join(annotation, "test", "train_test")
    os.makedirs(protocols)
    write_cuhk_sysu_images(
        os.path.join(annotation, "Images.mat"),
        [
            ("s1.jpg", [[50, 40, 300, 250], [5, 5, 20, 40]]),
            ("s2.jpg", [[10, 10, 30, 60], [60, 20, 40, 100], [180, 100, 40, 80], [250, 10, 20, 20]]),
            ("s3.jpg", []),
            ("s4.jpg", [[20, 30, 40, 90], [100, 20, 30, 70]]),
            ("s5.jpg", [[60, 40, 300, 250], [10, 10, 30, 60]]),
            ("s6.jpg", [[30, 20, 40, 100]]),
            ("s7.jpg", [[50, 50, 30, 60]]),
        ],
    )
    savemat(os.path.join(annotation, "pool.mat"), {"pool": _cell_column(["s4.jpg", "s5.jpg", "s6.jpg", "s7.jpg"])})
    write_cuhk_sysu_train(
        os.path.join(protocols, "Train.mat"),
        [
            ("p1", [("s1.jpg", [50, 40, 300, 250]), ("s2.jpg", [60, 20, 40, 100])]),
            ("p2", [("s2.jpg", [10, 10, 30, 60])]),
        ],
    )
    query0 = ("s4.jpg", [20, 30, 40, 90], "p10")
    query1 = ("s6.jpg", [30, 20, 40, 100], "p11")
    p10_in_s5, p11_in_s5 = ("s5.jpg", [60, 40, 300, 250]), ("s5.jpg", [10, 10, 30, 60])
    write_cuhk_sysu_protocol(
        os.path.join(protocols, "TestG50.mat"),
        50,
        [
            (*query0, [p10_in_s5, ("s6.jpg", None), ("s7.jpg", None)]),
            (*query1, [p11_in_s5, ("s4.jpg", None), ("s7.jpg", None)]),
        ],
    )
    write_cuhk_sysu_protocol(
        os.path.join(protocols, "TestG100.mat"),
        100,
        [
            (*query0, [("s7.jpg", None), p10_in_s5, ("s6.jpg", None), ("s7.jpg", None)]),
            (*query1, [p11_in_s5, ("s4.jpg", None)]),
        ],
    )
    return base


PRW_IMAGE_SIZE = (160, 120)  # width, height of every fixture frame


def write_prw(root):
    """`<root>/prw/`: 2 train and 3 test frames of 160x120, 2 queries. Returns that folder.

    Rows [pid, x, y, w, h] and the key each annotation file uses:
        c1s1_000151 (train, box_new):   [5, 10, 10, 20, 40], [-2, 50, 10, 20, 40], [12, 100, 60, 80, 80] (clipped)
        c2s1_000200 (train, anno_file): [12, 30, 30, 20, 40], [7, 200, 10, 10, 10] (outside: dropped)
        c3s2_000300 (test, anno_previous): [5, 10, 10, 30, 60], [-2, 60, 10, 30, 60]
        c4s1_000400 (test, box_new):    [5, 80, 20, 30, 60], [9, 20, 20, 30, 60]
        c1s3_000500 (test, box_new):    no one
    query_info.txt: pid 5 in c3s2_000300, pid 9 in c4s1_000400.
    """
    base = os.path.join(root, "prw")
    frames = {
        "c1s1_000151": ("box_new", [[5, 10, 10, 20, 40], [-2, 50, 10, 20, 40], [12, 100, 60, 80, 80]]),
        "c2s1_000200": ("anno_file", [[12, 30, 30, 20, 40], [7, 200, 10, 10, 10]]),
        "c3s2_000300": ("anno_previous", [[5, 10, 10, 30, 60], [-2, 60, 10, 30, 60]]),
        "c4s1_000400": ("box_new", [[5, 80, 20, 30, 60], [9, 20, 20, 30, 60]]),
        "c1s3_000500": ("box_new", []),
    }
    os.makedirs(os.path.join(base, "annotations"))
    for name, (key, rows) in frames.items():
        write_jpg(os.path.join(base, "frames", name + ".jpg"), *PRW_IMAGE_SIZE)
        boxes = np.array(rows, dtype=np.float64).reshape(-1, 5)
        savemat(os.path.join(base, "annotations", name + ".jpg.mat"), {key: boxes})
    savemat(os.path.join(base, "frame_train.mat"), {"img_index_train": _cell_column(["c1s1_000151", "c2s1_000200"])})
    savemat(
        os.path.join(base, "frame_test.mat"),
        {"img_index_test": _cell_column(["c3s2_000300", "c4s1_000400", "c1s3_000500"])},
    )
    with open(os.path.join(base, "query_info.txt"), "w") as query_info:
        query_info.write("5 10.000000 10.000000 30.000000 60.000000 c3s2_000300\n")
        query_info.write("9 20.000000 20.000000 30.000000 60.000000 c4s1_000400\n")
    return base


def _mat73_store(refs_group, array):
    """Store a MATLAB array in `#refs#` as MATLAB v7.3 does (column-major, so the HDF5 shape is the
    MATLAB one reversed); None = an empty cell, flagged MATLAB_empty; "bare empty" = an empty cell
    stored as its dimensions only. Returns the object reference."""
    name = str(len(refs_group))
    if array is None or isinstance(array, str):
        dataset = refs_group.create_dataset(name, data=np.zeros(2, dtype=np.uint64))
        if array is None:
            dataset.attrs["MATLAB_empty"] = np.uint8(1)
        dataset.attrs["MATLAB_class"] = np.bytes_("double")
    else:
        array = np.asarray(array)
        dataset = refs_group.create_dataset(name, data=array.T)
        dataset.attrs["MATLAB_class"] = np.bytes_("uint8" if array.dtype == np.uint8 else "double")
    return dataset.ref


def _mat73_cell(parent, name, refs, column=True):
    """A MATLAB cell array of object references: a list (an N x 1 cell, HDF5 [1, N]; column=False:
    1 x N, HDF5 [N, 1]) or a 2-D numpy object array (n x m, HDF5 [m, n])."""
    import h5py

    refs = np.asarray(refs, dtype=object)
    if refs.ndim == 1:
        refs = refs[:, None] if column else refs[None, :]
    dataset = parent.create_dataset(name, data=refs.T, dtype=h5py.ref_dtype)
    dataset.attrs["MATLAB_class"] = np.bytes_("cell")
    return dataset


def write_cuhk03_mat(path, cells, testsets):
    """The original CUHK03 release's cuhk-03.mat (MATLAB v7.3 = HDF5 with a 512-byte MATLAB header).

    Args:
        cells: {"labeled" / "detected": [one n_persons x 10 list of lists per camera pair]}, each
            entry an image [H, W, 3] uint8, None (an empty cell flagged MATLAB_empty) or the string
            "bare empty" (an empty cell stored as its dimensions, no flag).
        testsets: list of n x 2 [[pair, person], ...] (1-based). The release stores its 20 splits,
            like `labeled` and `detected` (5 x 1), as an N x 1 cell (HDF5 [1, N]); this writer stores
            them 1 x N (HDF5 [N, 1]) so that a test reads both orientations.
    """
    import h5py

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        refs_group = f.create_group("#refs#")
        for key, pairs in cells.items():
            pair_refs = []
            for persons in pairs:
                grid = np.empty((len(persons), 10), dtype=object)
                for person, row in enumerate(persons):
                    for cell, image in enumerate(row):
                        grid[person, cell] = _mat73_store(refs_group, image)
                pair_refs.append(_mat73_cell(refs_group, str(len(refs_group)), grid).ref)
            _mat73_cell(f, key, pair_refs)
        split_refs = [_mat73_store(refs_group, np.asarray(split, dtype=np.float64)) for split in testsets]
        _mat73_cell(f, "testsets", split_refs, column=False)
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2014 HDF5 schema 1.00 .")
