"""One LoRA training round on the selected samples, with accelerate.

The same code runs on one CPU, one GPU or several processes (``accelerate
launch``): accelerate places the model, wraps it for DDP and shards the data.
The learning rate warms up and decays inside the round; every round starts its
own schedule and optimizer, so resuming a round reproduces it exactly.

Several processes: ``batch_size`` is per process; accelerate hands process r
micro-batches r, r + P, ... of the one shuffled order, so an optimizer step
sees the same samples as one process with ``batch_size * P`` (the last,
partial step excepted: accelerate pads it with samples from the start). The
loss is normalised by the response tokens of ALL processes' micro-batches
(:class:`ResponseLoss`), so the all-reduced gradient equals the single-process
gradient of the mean loss over those tokens, not a mean of per-process means.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from lifelong.data.sample import Sample


@dataclass
class TrainConfig:
    """A training round.

    epochs: passes over the selected samples.
    batch_size: samples per micro-batch per process.
    grad_accum: micro-batches per optimizer step.
    lr: peak learning rate of LoRA (and of the projector unless ``projector_lr`` is set).
    projector_lr: peak learning rate of the vision->text projector (None = ``lr``).
    warmup_ratio: share of the round's steps spent warming up linearly.
    schedule: decay after warm-up, within the round.
    max_grad_norm: gradient clipping (0 = off).
    mixed_precision: accelerate's setting; ``no`` on CPUs without bf16 support.
    seed: shuffling and dropout; round t uses seed + t.
    log_every: optimizer steps between loss records.
    """

    epochs: float = 1.0
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-4
    projector_lr: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float = 1.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    seed: int = 0
    log_every: int = 1
    progress: bool = True


def lr_lambda(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` of ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    frac = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * frac)) if schedule == "cosine" else max(0.0, 1 - frac)


def batch_loss(loaded, batch) -> torch.Tensor:
    """Mean cross-entropy over the response tokens of the batch."""
    logits, targets, _ = loaded.response_logits(batch)  # (N, V), (N,) at the response tokens
    return torch.nn.functional.cross_entropy(logits, targets)


class ResponseLoss(torch.nn.Module):
    """``forward(batch) -> (summed response-token NLL (), response tokens ())``.

    ``LoadedModel`` computes its losses through the base model's submodules,
    never through ``model.__call__``, so a DDP wrapper around the PeftModel
    would see no forward and all-reduce no gradient. This module owns the
    PeftModel (its parameters are DDP's) and its ``forward`` is the loss, so
    wrapping it with ``accelerator.prepare`` puts DDP (and mixed-precision
    autocast) on the path that training actually takes.
    """

    def __init__(self, loaded):
        super().__init__()
        self.model = loaded.model
        self.loaded = loaded  # not a Module: a plain attribute

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        logits, targets, _ = self.loaded.response_logits(batch)  # (N, V), (N,)
        nll = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        return nll, torch.tensor(float(targets.numel()), device=nll.device)


def param_groups(loaded, cfg: TrainConfig) -> list[dict]:
    """AdamW parameter groups: LoRA at ``cfg.lr``, the projector at ``cfg.projector_lr`` (when set)."""
    names = tuple(getattr(getattr(loaded, "backend", None), "projector_names", ()) or ())
    lora, proj = [], []
    for name, p in loaded.model.named_parameters():
        if p.requires_grad:
            (proj if names and any(f"{n}." in name for n in names) else lora).append(p)
    if cfg.projector_lr is None or not proj:
        return [{"params": lora + proj, "lr": cfg.lr}]
    return [{"params": lora, "lr": cfg.lr}, {"params": proj, "lr": cfg.projector_lr}]


def train_round(loaded, samples: list[Sample], image_loader, cfg: TrainConfig, round_: int,
                accelerator=None, on_log=None) -> list[list[float]]:
    """Train ``loaded.model`` in place on ``samples``; returns [[step, loss], ...].

    Samples are shuffled with seed + round; the order is the same on every
    process before accelerate shards it.
    """
    from accelerate import Accelerator
    from tqdm import tqdm

    if not samples:
        return []
    from lifelong.distributed import ddp_ignore_frozen, state

    state()  # joins the process group first when launched (see lifelong.distributed)
    own_accelerator = accelerator is None
    if own_accelerator:
        from accelerate.utils import DistributedDataParallelKwargs

        # The projector gets no gradient from a text-only micro-batch.
        ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
        accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum, mixed_precision=cfg.mixed_precision,
                                  kwargs_handlers=[ddp])
    seed = cfg.seed + round_
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        samples, batch_size=cfg.batch_size, shuffle=True, generator=gen,
        collate_fn=lambda b: loaded.collate(b, image_loader),
    )
    model = loaded.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(loaded, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    P = max(1, accelerator.num_processes)
    steps_per_epoch = math.ceil(len(loader) / P / cfg.grad_accum)
    total = max(1, math.ceil(steps_per_epoch * cfg.epochs))
    warmup = int(cfg.warmup_ratio * total)
    # Not prepared: accelerate's scheduler wrapper steps P times per optimizer
    # step (it counts single-process steps); this one counts optimizer steps.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, total, warmup, cfg.schedule))
    loss_module = ResponseLoss(loaded)
    ddp_ignore_frozen(loss_module)
    wrapped, opt, loader = accelerator.prepare(loss_module, opt, loader)
    losses: list[list[float]] = []
    model.train()
    step, running, n_running = 0, 0.0, 0
    bar = tqdm(total=total, desc=f"train round {round_}", unit="step", leave=False,
               disable=not cfg.progress or not accelerator.is_local_main_process)
    try:
        while step < total:
            for batch in loader:
                with accelerator.accumulate(wrapped):
                    nll, n_tok = wrapped(batch)
                    n_all = accelerator.reduce(n_tok.detach(), "sum")  # response tokens of all processes
                    # DDP averages gradients over P processes: scale so the sum is d(total NLL / n_all).
                    accelerator.backward(nll * P / n_all.clamp(min=1))
                    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    opt.step()
                    if accelerator.sync_gradients and not opt.step_was_skipped:
                        sched.step()
                    opt.zero_grad(set_to_none=True)
                running += (accelerator.reduce(nll.detach(), "sum") / n_all.clamp(min=1)).item()
                n_running += 1
                if accelerator.sync_gradients:
                    step += 1
                    bar.update(1)
                    if step % cfg.log_every == 0 or step == total:
                        rec = [step, running / n_running]
                        losses.append(rec)
                        bar.set_postfix(loss=f"{rec[1]:.3f}")
                        if on_log and accelerator.is_main_process:
                            on_log({"train/loss": rec[1], "train/lr": sched.get_last_lr()[0]}, step)
                        running, n_running = 0.0, 0
                    if step >= total:
                        break
    finally:
        bar.close()
        model.eval()
        del wrapped
        if own_accelerator:
            # Drops the DDP wrapper, whose gradient hooks must not outlive the
            # round (a later scoring backward would otherwise all-reduce).
            accelerator.free_memory()
    return losses
