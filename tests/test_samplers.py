"""The training stream: iteration i always holds positions [i*B, (i+1)*B), whatever the number of
loader workers, the start iteration or the rank."""
import numpy as np
import pytest
from detectron2.data import build_detection_train_loader

from ps_plugin.data.samplers import (
    MixedStreamDataset,
    SeededMapper,
    ShuffledStreamDataset,
    StreamPositionSampler,
    integer_weights,
    split_by_dataset,
)


def _round_robin_batches(sampler, num_workers, batch_size, num_batches):
    """What Detectron2's loader does: shard the sampler over workers, batch per worker, alternate."""
    workers = max(num_workers, 1)
    needed = num_batches * batch_size + workers * batch_size
    stream = iter(sampler)
    elements = [next(stream) for _ in range(needed)]
    per_worker = [elements[w::workers] for w in range(workers)]
    batches = []
    for k in range(num_batches):
        worker, index = k % workers, k // workers
        batches.append(per_worker[worker][index * batch_size:(index + 1) * batch_size])
    return batches


@pytest.mark.parametrize("num_workers", [0, 1, 2, 3])
@pytest.mark.parametrize("start_iter", [0, 1, 5])
def test_iteration_positions_do_not_depend_on_workers(num_workers, start_iter):
    sampler = StreamPositionSampler(total_batch_size=4, start_iter=start_iter, num_workers=num_workers)
    for n, batch in enumerate(_round_robin_batches(sampler, num_workers, 4, 9)):
        first = (start_iter + n) * 4
        assert batch == list(range(first, first + 4))


def test_rank_slices_tile_the_global_batch(monkeypatch):
    from detectron2.utils import comm

    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    slices = []
    for rank in (0, 1):
        monkeypatch.setattr(comm, "get_rank", lambda rank=rank: rank)
        sampler = StreamPositionSampler(total_batch_size=4, start_iter=3, num_workers=2)
        slices.append(_round_robin_batches(sampler, 2, 2, 4))
    for n in range(4):
        assert sorted(slices[0][n] + slices[1][n]) == list(range((3 + n) * 4, (4 + n) * 4))


def test_real_detectron2_loader_with_two_workers_follows_the_stream():
    records = [{"index": i} for i in range(7)]
    dataset = ShuffledStreamDataset(records, seed=3)
    loader = build_detection_train_loader(
        dataset, mapper=SeededMapper(lambda r: r["index"]), aspect_ratio_grouping=False, num_workers=2,
        sampler=StreamPositionSampler(total_batch_size=3, start_iter=2, num_workers=2), total_batch_size=3,
    )
    got = [batch for _, batch in zip(range(4), loader)]
    expected = [[dataset[p]["index"] for p in range(i * 3, i * 3 + 3)] for i in range(2, 6)]
    assert got == expected


def _mixed(shuffle=True, seed=5):
    sources = [[{"name": f"a{i}"} for i in range(5)], [{"name": f"b{i}"} for i in range(3)], [{"name": "c0"}]]
    return MixedStreamDataset(sources, (0.5, 0.25, 0.25), seed=seed, shuffle=shuffle, names=["a", "b", "c"])


def test_integer_weights_keep_the_ratios():
    assert integer_weights((0.5, 0.25, 0.25)) == [2, 1, 1]
    assert integer_weights((3, 6)) == [1, 2]
    assert integer_weights((1 / 3, 2 / 3)) == [1, 2]
    with pytest.raises(ValueError, match="must be positive"):
        integer_weights((1, 0))


def test_mixed_stream_ratios_hold_in_every_cycle_aligned_batch():
    dataset = _mixed()
    for batch in range(50):
        ids = [dataset[p]["dataset_id"] for p in range(batch * 8, batch * 8 + 8)]
        assert np.bincount(ids, minlength=3).tolist() == [4, 2, 2]


def test_each_source_is_read_as_its_own_shuffled_epochs():
    dataset = _mixed()
    names = [dataset[p]["name"] for p in range(4 * 20)]
    a_names = [n for n in names if n.startswith("a")]
    for epoch in range(len(a_names) // 5):  # every run of 5 reads of "a" is a permutation of its records
        assert sorted(a_names[epoch * 5:(epoch + 1) * 5]) == [f"a{i}" for i in range(5)]
    assert a_names[:5] != [f"a{i}" for i in range(5)] or a_names[5:10] != [f"a{i}" for i in range(5)]
    assert {n for n in names if n.startswith("c")} == {"c0"}


def test_mixed_stream_is_a_pure_function_of_the_position():
    """What makes resume and DDP exact: a fresh dataset, read out of order, gives the same records and seeds."""
    reference = [(r["name"], r["stream_seed"], r["dataset_id"]) for r in map(_mixed().__getitem__, range(40))]
    fresh = _mixed()
    backwards = {p: fresh[p] for p in reversed(range(40))}
    assert [(backwards[p]["name"], backwards[p]["stream_seed"], backwards[p]["dataset_id"]) for p in range(40)] == reference
    assert reference != [(r["name"], r["stream_seed"], r["dataset_id"]) for r in map(_mixed(seed=6).__getitem__, range(40))]


def test_unshuffled_cycles_group_sources_in_order():
    dataset = _mixed(shuffle=False)
    assert [dataset[p]["dataset_id"] for p in range(8)] == [0, 0, 1, 2, 0, 0, 1, 2]
    assert [dataset[p]["name"] for p in range(12) if dataset[p]["dataset_id"] == 1] == ["b0", "b1", "b2"]


def test_mixed_stream_through_the_real_loader_and_two_ranks(monkeypatch):
    from detectron2.utils import comm

    dataset = _mixed()
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    got = []
    for rank in (0, 1):
        monkeypatch.setattr(comm, "get_rank", lambda rank=rank: rank)
        loader = build_detection_train_loader(
            dataset, mapper=SeededMapper(lambda r: r["name"]), aspect_ratio_grouping=False, num_workers=2,
            sampler=StreamPositionSampler(total_batch_size=8, start_iter=3, num_workers=2),
            total_batch_size=4,  # the rank's share (detectron2 reads its own world size, not the patched one)
        )
        got.append([batch for _, batch in zip(range(3), loader)])
    for i in range(3):
        expected = [dataset[p]["name"] for p in range((3 + i) * 8, (4 + i) * 8)]
        assert got[0][i] + got[1][i] == expected


def test_mixed_stream_bad_input_names_the_dataset():
    with pytest.raises(ValueError, match="'b' has no record"):
        MixedStreamDataset([[{"x": 1}], []], (1, 1), names=["a", "b"])
    with pytest.raises(ValueError, match="3 dataset ratios"):
        MixedStreamDataset([[{"x": 1}], [{"x": 2}]], (1, 1, 1))


def test_split_by_dataset_follows_the_train_order():
    records = [{"dataset_name": "y", "i": 0}, {"dataset_name": "x", "i": 1}, {"dataset_name": "y", "i": 2}]
    assert [[r["i"] for r in group] for group in split_by_dataset(records, ["x", "y"])] == [[1], [0, 2]]
