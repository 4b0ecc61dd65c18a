"""Collective helpers that also work with gloo (CPU) and in a single process."""
import torch
import torch.distributed as dist


def _world_size():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@torch.no_grad()
def all_gather_tensor(x):
    """Concatenate `x` [N_r, ...] from every rank in rank order -> [sum_r N_r, ...].

    Ranks may hold different N_r (including 0): each rank pads to the largest N_r before the
    collective and the padding is dropped afterwards. Not differentiable (the result is detached).
    With one process (or no process group) returns `x.detach()`.
    """
    x = x.detach()
    world_size = _world_size()
    if world_size == 1:
        return x
    local_size = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    sizes = [torch.zeros_like(local_size) for _ in range(world_size)]
    dist.all_gather(sizes, local_size)
    sizes = [int(s.item()) for s in sizes]
    max_size = max(sizes)
    if max_size == 0:
        return x
    padded = x.new_zeros((max_size,) + tuple(x.shape[1:]))
    padded[: x.shape[0]] = x
    gathered = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat([g[:n] for g, n in zip(gathered, sizes)], dim=0)


@torch.no_grad()
def broadcast_tensor(x, src=0):
    """Every rank receives rank `src`'s `x` (same shape and dtype on every rank), in place; returns it.
    With one process (or no process group) returns `x` unchanged."""
    if _world_size() > 1:
        dist.broadcast(x, src=src)
    return x


@torch.no_grad()
def mean_over_ranks(value, device=None):
    """The mean of a number over every rank: all-reduce sum / world size -> 0-d float tensor.

    With one process (or no process group) returns `value` itself as a tensor.
    """
    total = torch.as_tensor(float(value), device=device)
    world_size = _world_size()
    if world_size > 1:
        dist.all_reduce(total)
    return total / world_size
