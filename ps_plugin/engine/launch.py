"""`launch`: Detectron2's launcher on GPUs; a gloo process group on CPU-only machines.

Detectron2 0.6's `launch` asserts CUDA and uses NCCL. On a machine without CUDA this spawns
`num_processes` CPU workers with the gloo backend and sets up `detectron2.utils.comm`'s local
process group the same way, so comm.get_local_rank()/get_local_size() keep working.
"""
import logging
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch as d2_launch
from detectron2.engine.launch import _find_free_port
from detectron2.utils import comm

DEFAULT_TIMEOUT = timedelta(minutes=30)


def _set_local_process_group(num_machines, num_per_machine, machine_rank):
    """Create one group per machine and register this machine's as comm's local group."""
    if hasattr(comm, "create_local_process_group"):
        comm.create_local_process_group(num_per_machine)
        return
    for i in range(num_machines):
        group = dist.new_group(list(range(i * num_per_machine, (i + 1) * num_per_machine)))
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group


def _cpu_worker(local_rank, main_func, world_size, num_per_machine, machine_rank, dist_url, args, timeout):
    rank = machine_rank * num_per_machine + local_rank
    try:
        dist.init_process_group("gloo", init_method=dist_url, world_size=world_size, rank=rank, timeout=timeout)
    except Exception:
        logging.getLogger(__name__).error(f"Could not join the process group at {dist_url}")
        raise
    _set_local_process_group(world_size // num_per_machine, num_per_machine, machine_rank)
    comm.synchronize()
    main_func(*args)


def launch(main_func, num_processes_per_machine, num_machines=1, machine_rank=0, dist_url=None, args=(),
           timeout=DEFAULT_TIMEOUT):
    """Run `main_func(*args)` in num_machines x num_processes_per_machine processes.

    With CUDA this is Detectron2's `launch` (NCCL, one process per GPU). Without CUDA it spawns CPU
    processes on the gloo backend. `dist_url="auto"` picks a free local port (single machine).
    """
    if torch.cuda.is_available():
        return d2_launch(main_func, num_processes_per_machine, num_machines, machine_rank, dist_url, args, timeout)
    world_size = num_machines * num_processes_per_machine
    if world_size == 1:
        return main_func(*args)
    if dist_url is None or dist_url == "auto":
        if num_machines > 1:
            raise ValueError("--dist-url must name the main machine (tcp://HOST:PORT) in multi-machine runs")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    mp.spawn(
        _cpu_worker,
        nprocs=num_processes_per_machine,
        args=(main_func, world_size, num_processes_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
    )
