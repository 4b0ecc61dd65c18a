"""MemoryBank / FeatureQueue: momentum updates, wrap-around, checkpointing, cross-rank sync."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ps_plugin.modeling.common import FeatureQueue, MemoryBank
from ps_plugin.utils.distributed import all_gather_tensor

from common import free_port


def test_momentum_update_is_sequential_and_renormalised():
    bank = MemoryBank(num_entries=3, dim=2, momentum=0.5)
    bank.features.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]))
    bank.update(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    # first: normalize((0.5, 0.5)) = (0.7071, 0.7071); second: normalize((0.35355, 0.85355))
    first = torch.tensor([0.5, 0.5]) / 0.5 ** 0.5
    second = 0.5 * first + 0.5 * torch.tensor([0.0, 1.0])
    assert torch.allclose(bank.features[0], second / second.norm(), atol=1e-6)
    assert torch.allclose(bank.features[0], torch.tensor([0.382683, 0.923880]), atol=1e-6)
    assert torch.equal(bank.features[1:], torch.tensor([[0.0, 1.0], [0.6, 0.8]]))


@pytest.mark.parametrize("momentum,expected", [(0.9, (0.993884, 0.110432)), (0.2, (0.242536, 0.970143))])
def test_momentum_weighs_the_old_entry_by_m(momentum, expected):
    """m != 0.5 so that swapping m and 1 - m changes the result: v = normalize(m * (1, 0) + (1 - m) * (0, 1))."""
    # m = 0.9: (0.9, 0.1) / sqrt(0.82) = (0.993884, 0.110432); m = 0.2: (0.2, 0.8) / sqrt(0.68) = (0.242536, 0.970143)
    bank = MemoryBank(num_entries=2, dim=2, momentum=momentum)
    bank.features.copy_(torch.tensor([[1.0, 0.0], [0.6, 0.8]]))
    bank.update(torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    assert torch.allclose(bank.features[0], torch.tensor(expected), atol=1e-6)
    assert torch.equal(bank.features[1], torch.tensor([0.6, 0.8]))


def test_empty_row_takes_the_feature_direction():
    bank = MemoryBank(num_entries=2, dim=2, momentum=0.5)
    bank.update(torch.tensor([[3.0, 4.0]]), torch.tensor([1]))
    assert torch.allclose(bank.features[1], torch.tensor([0.6, 0.8]))


def test_out_of_range_index_is_reported():
    with pytest.raises(IndexError, match="out of range"):
        MemoryBank(2, 2).update(torch.ones(1, 2), torch.tensor([2]))


def test_queue_wraps_around_and_keeps_the_newest():
    queue = FeatureQueue(size=3, dim=1)
    queue.enqueue(torch.tensor([[1.0], [2.0]]))
    queue.enqueue(torch.tensor([[3.0], [4.0]]))
    assert queue.features.flatten().tolist() == [4.0, 2.0, 3.0]
    assert int(queue.pointer) == 1
    queue.enqueue(torch.tensor([[5.0], [6.0], [7.0], [8.0]]))
    # slots 1, 2, 0, 1 in order: the last writes win
    assert queue.features.flatten().tolist() == [7.0, 8.0, 6.0]
    assert int(queue.pointer) == 2
    queue.enqueue(torch.zeros(0, 1))
    assert int(queue.pointer) == 2


def test_buffers_round_trip_through_a_checkpoint(tmp_path):
    bank, queue = MemoryBank(4, 3), FeatureQueue(5, 3)
    bank.update(torch.randn(2, 3), torch.tensor([1, 3]))
    queue.enqueue(torch.randn(2, 3))
    path = tmp_path / "banks.pth"
    torch.save({"bank": bank.state_dict(), "queue": queue.state_dict()}, path)
    bank2, queue2 = MemoryBank(4, 3), FeatureQueue(5, 3)
    state = torch.load(path)
    bank2.load_state_dict(state["bank"])
    queue2.load_state_dict(state["queue"])
    assert set(bank.state_dict()) == {"features"} and set(queue.state_dict()) == {"features", "pointer"}
    assert torch.equal(bank2.features, bank.features)
    assert torch.equal(queue2.features, queue.features) and int(queue2.pointer) == 2


def test_all_gather_single_process_is_identity():
    x = torch.randn(3, 2, requires_grad=True)
    gathered = all_gather_tensor(x)
    assert torch.equal(gathered, x.detach()) and not gathered.requires_grad


# Rank r holds rank_features[r] (rank 1 has more rows, rank 0 an unlabeled-free batch).
RANK_FEATURES = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.6, 0.8], [0.8, 0.6]])]
RANK_INDICES = [torch.tensor([0]), torch.tensor([0, 2, 1])]


def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    bank, queue = MemoryBank(3, 2), FeatureQueue(3, 2)
    gathered = all_gather_tensor(RANK_FEATURES[rank])
    bank.update(RANK_FEATURES[rank], RANK_INDICES[rank])
    queue.enqueue(RANK_FEATURES[rank][:0] if rank == 0 else RANK_FEATURES[rank])
    torch.save({"gathered": gathered, "bank": bank.features, "queue": queue.features}, f"{out_dir}/rank{rank}.pth")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_over_the_global_batch(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pth") for r in range(2)]
    bank, queue = MemoryBank(3, 2), FeatureQueue(3, 2)
    bank.update(torch.cat(RANK_FEATURES), torch.cat(RANK_INDICES))
    queue.enqueue(RANK_FEATURES[1])
    for result in ranks:
        assert torch.equal(result["gathered"], torch.cat(RANK_FEATURES))
        assert torch.equal(result["bank"], bank.features)
        assert torch.equal(result["queue"], queue.features)
