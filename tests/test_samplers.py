"""The training stream: iteration i always holds positions [i*B, (i+1)*B), whatever the number of
loader workers, the start iteration or the rank."""
import pytest
from detectron2.data import build_detection_train_loader

from ps_plugin.data.samplers import SeededMapper, ShuffledStreamDataset, StreamPositionSampler


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
