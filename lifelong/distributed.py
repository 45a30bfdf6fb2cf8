"""Several processes (``accelerate launch``): who am I, wait for the others, gather.

One process is the degenerate case of everything here (rank 0 of 1; barriers
and gathers return at once), so callers never branch on whether they were
launched.

Launching. accelerate's ``--cpu`` flag alone starts ONE process unless MPI is
used (``--mpirun_hostfile``); several CPU processes on one machine come from
the multi-GPU launcher (torchrun) with ``ACCELERATE_USE_CPU=1`` or on a
machine without CUDA (see ``configs/accelerate/cpu_2proc.yaml``). :func:`state`
must then be the first thing that touches accelerate's process state: it
passes ``cpu=True`` so the processes join a gloo group instead of running
alone.

Who does what in a run (``lifelong/loop.py``): scoring, training and
evaluation run on every process over its share; ingest, selection, pruning,
reports and every stage's done marker are the main process's, while the
others wait at a barrier. Everything lives in the run directory, so all
processes must see the same filesystem (one machine, or shared storage).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch


def launched() -> bool:
    """True in a process started by a distributed launcher (torchrun/accelerate/MPI)."""
    for key in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        if int(os.environ.get(key, "1")) > 1:
            return True
    return False


def state():
    """accelerate's ``PartialState``, created (process group joined) on first call.

    ``cpu=True`` when ``ACCELERATE_USE_CPU`` is set, or when launched on a
    machine without CUDA: then the processes form a gloo group. Later
    ``Accelerator()`` objects reuse this state; on GPUs it also makes
    ``cuda`` mean this process's GPU (``cuda:LOCAL_RANK``), so a model placed
    on ``cuda`` after this call lands on the right device.
    """
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or (launched() and not torch.cuda.is_available())
    return PartialState(cpu=cpu)


def rank_world() -> tuple[int, int]:
    """(this process's index, number of processes)."""
    s = state()
    return s.process_index, s.num_processes


def is_main() -> bool:
    return state().is_main_process


def barrier() -> None:
    """Every process waits here until all have arrived (no-op for one process)."""
    s = state()
    if s.num_processes > 1:
        s.wait_for_everyone()


def gather_objects(obj: Any) -> list:
    """``obj`` of every process, in rank order (picklable objects; one process: ``[obj]``)."""
    s = state()
    if s.num_processes == 1:
        return [obj]
    out: list = [None] * s.num_processes
    torch.distributed.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """The main (``src``) process's ``obj`` on every process."""
    s = state()
    if s.num_processes == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def shard_indices(n: int, rank: int, world: int) -> list[int]:
    """Indices of ``range(n)`` that process ``rank`` of ``world`` handles: every world-th, from rank."""
    return list(range(rank, n, world))


class ShardedGenerator:
    """A model whose ``generate`` splits each call's samples across processes.

    Every process must call ``generate`` with the same samples (evaluation
    iterates the pool deterministically, so it does); each answers samples
    ``rank, rank + world, ...`` of the call and the answers are gathered, so
    every process returns all answers in the order of ``samples``. Pass it to
    ``evaluate_tasks`` in place of the model: the per-call batch is then split,
    so ``eval.batch_size`` is the batch over all processes.
    """

    def __init__(self, loaded):
        self.loaded = loaded
        self.model = getattr(loaded, "model", None)  # evaluate_tasks puts it in eval mode

    def generate(self, samples: Sequence, image_loader, **kw) -> list[str]:
        rank, world = rank_world()
        if world == 1:
            return self.loaded.generate(list(samples), image_loader, **kw)
        mine = shard_indices(len(samples), rank, world)
        answers = self.loaded.generate([samples[i] for i in mine], image_loader, **kw) if mine else []
        out: list[str] = [""] * len(samples)
        for idx, ans in gather_objects((mine, list(answers))):
            for i, a in zip(idx, ans):
                out[i] = a
        return out


def ddp_ignore_frozen(module: torch.nn.Module) -> None:
    """Tell DDP to leave frozen parameters and all buffers alone.

    DDP broadcasts every parameter and buffer from rank 0 when it wraps a
    module (once per training round here) and buffers before every forward.
    The frozen base model is identical on every process (same weights or same
    seeded initialisation), so that would only move gigabytes for nothing;
    gradients of trainable parameters are all-reduced as usual.
    """
    from torch.nn.parallel import DistributedDataParallel

    names = [n for n, p in module.named_parameters() if not p.requires_grad]
    names += [n for n, _ in module.named_buffers()]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, names)
