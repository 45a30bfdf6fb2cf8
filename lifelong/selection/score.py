"""The scoring pass: one forward(+backward) per batch gives sketches and every expert.

Output is sharded: shard ``i`` holds samples ``[i*S, (i+1)*S)`` of the given
order and is written atomically to ``shard_{i:05d}.safetensors`` followed by a
``.done`` marker, so an interrupted pass resumes at the first missing shard and
several processes can split the shards (``rank``/``world``) with identical
results: the projection is a pure function of the seed.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lifelong.data.sample import Sample
from lifelong.models.config import ModelConfig
from lifelong.models.loaded import mean_pool
from lifelong.selection.clip_score import ClipConfig, ClipScorer
from lifelong.selection.experts import DEFAULT_SCORED, EXPERTS, PassOutputs, compute, per_sample_mean
from lifelong.selection.projection import RademacherProjector, normalize_fp16
from lifelong.selection.score_store import ScoreResult, consolidate
from lifelong.selection.score_store import gather_scores as store_gather
from lifelong.selection.sketch import PerSampleGrads, SketchConfig, lora_linears, only_these_trainable


@dataclass
class ScoreConfig:
    """The scoring stage: which experts, and the gradient sketch.

    experts: names from the expert registry (default ``experts.DEFAULT_SCORED``).
        ``clip`` needs a CLIP model with user-supplied weights (``clip.model`` +
        ``clip.pretrained``, a local file; nothing is downloaded) or
        ``clip.tiny``; without one it is an error.
    shard_size: samples per output shard (the unit of resumption and of work
        split across processes).
    seed: seeds the ``random`` expert.
    model: a proxy model that scores instead of the trained one (as COINCIDE
        and CADC do): a smaller model of the same or another family computes
        the sketches, the experts and the pruning embeddings of the pool, while
        ``model`` is what trains. It is loaded once and stays fixed (a fresh
        LoRA, B = 0), so its scores do not move between rounds: ``refresh`` < 1
        then loses nothing. None (the default): the trained model scores itself.
    refresh: in a run, the fraction of the samples scored in an earlier round
        that are scored again with the current model, stalest first; the others
        keep the sketches, scores and embeddings of the round that last scored
        them. New samples are always scored. 1.0 (the default) is the exact
        algorithm: the whole pool, every round. Below 1 the scoring pass costs
        about (new + refresh x old) / pool of it, and selection works on scores
        from up to ~1/refresh rounds back (a trade, not the paper's method).
    """

    sketch: SketchConfig = field(default_factory=SketchConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    experts: list[str] = field(default_factory=lambda: list(DEFAULT_SCORED))
    shard_size: int = 256
    seed: int = 0
    model: ModelConfig | None = None
    refresh: float = 1.0

    def __post_init__(self):
        if not 0.0 <= float(self.refresh) <= 1.0:
            raise ValueError(f"score.refresh must be in [0, 1], got {self.refresh}")
        if self.shard_size < 1:
            raise ValueError(f"score.shard_size must be >= 1, got {self.shard_size}")
        if "clip" in self.experts and not (self.clip.model or self.clip.tiny):
            raise ValueError(CLIP_WITHOUT_WEIGHTS)


CLIP_WITHOUT_WEIGHTS = (
    "expert 'clip' is requested (score.experts or select.strategy=clip) but no CLIP model is configured; "
    "CLIP needs user-supplied weights: set score.clip.model=<open_clip architecture> and "
    "score.clip.pretrained=/path/to/checkpoint.safetensors (or score.clip.model=local-dir:/path), "
    "or remove 'clip' from score.experts")


class Scorer:
    """Holds the hooks and the projection for one model; ``score_batch`` does one batch.

    sketch=False (a strategy that does not cluster): no sketches; unless an
    expert needs the gradient (``grand``), no backward either, and the forward
    runs without autograd.
    """

    def __init__(self, loaded, cfg: ScoreConfig, image_loader, sketch: bool = True):
        self.loaded = loaded
        self.cfg = cfg
        self.image_loader = image_loader
        unknown = [e for e in cfg.experts if e not in EXPERTS]
        if unknown:
            raise ValueError(f"unknown expert(s) {unknown}; registered: {sorted(EXPERTS)}")
        self.experts = list(cfg.experts)
        self.clip = ClipScorer.from_config(cfg.clip) if "clip" in self.experts else None
        if "clip" in self.experts and self.clip is None:
            raise ValueError(CLIP_WITHOUT_WEIGHTS)
        self.needs = set().union(*(EXPERTS[e].needs for e in self.experts)) if self.experts else set()
        self.sketch = sketch
        self.grads = None
        if not (sketch or "grad" in self.needs):
            return
        n_layers = len(loaded.backend.decoder(loaded.base).layers)
        layers = sorted({i % n_layers for i in cfg.sketch.layers})  # -1 = the last decoder layer
        self.linears = lora_linears(loaded.lora_modules(layers))
        if not self.linears:
            raise ValueError(f"sketch layers {cfg.sketch.layers} have no LoRA modules (lora.layers: "
                             f"{loaded.lora_layers})")
        self.grads = PerSampleGrads(self.linears)
        self.params = [m.weight for m in self.grads.modules.values()]
        self.projector = RademacherProjector.from_config(self.grads.dim, cfg.sketch.projection)

    def close(self) -> None:
        if self.grads is not None:
            self.grads.remove()

    def score_batch(self, samples: list[Sample]) -> tuple[torch.Tensor | None, torch.Tensor, dict[str, torch.Tensor]]:
        """-> (sketches (B, d) fp16 or None, embeddings (B, H) fp16, {expert: (B,) float64})."""
        model = self.loaded.model
        was_training = model.training
        model.eval()  # no dropout: a sketch is a deterministic function of the sample
        grad = self.grads is not None
        try:
            batch = self.loaded.collate(samples, self.image_loader)
            B = len(samples)
            trainable = only_these_trainable(model, self.params) if grad else contextlib.nullcontext()
            with trainable, torch.set_grad_enabled(grad):
                h = self.loaded.hidden_states(batch)  # (B, T, H): one forward for the loss and the embedding
                logits, targets, rows = self.loaded.head_at_responses(h, batch)  # (N, V), (N,), (N,)
                embed = torch.nn.functional.normalize(mean_pool(h.detach(), batch["attention_mask"]), dim=-1)
                embed = embed.half().cpu()
                if grad:
                    nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")  # (N,)
                    per_sample_mean(nll, rows, B).sum().backward()
            out = PassOutputs(logits=logits.detach(), targets=targets, rows=rows, batch_size=B,
                              ids=[s.id for s in samples], seed=self.cfg.seed)
            flat = None
            if grad:
                flat = self.grads.flat()  # (B, D)
                for p in self.params:
                    p.grad = None
                out.grad_norm = torch.linalg.vector_norm(flat, dim=1)
            out.has_image = torch.tensor([bool(s.images) for s in samples], device=logits.device)
            if "blank" in self.needs:
                out.blank_nll = self._blank_nll(samples, out)
            if "clip" in self.needs:
                out.clip_sim = self.clip.similarity(samples, self.image_loader)
            scores = compute(self.experts, out)
            sketch = normalize_fp16(self.projector.project(flat)).cpu() if self.sketch else None
        finally:
            model.train(was_training)
        return sketch, embed, scores

    @torch.no_grad()
    def _blank_nll(self, samples: list[Sample], out: PassOutputs) -> torch.Tensor:
        """Response NLL with every image blanked; text-only samples keep their own NLL."""
        nll = out.token_stats()["nll"].clone()
        idx = [i for i, s in enumerate(samples) if s.images]
        if idx:
            batch = self.loaded.collate([samples[i] for i in idx], self.image_loader, blank_images=True)
            nll[idx] = self.loaded.per_sample_loss(batch).to(nll.dtype)
        return nll


def _length_hint(sample: Sample) -> int:
    """A cheap proxy of a sample's token count, for grouping samples into batches."""
    return sum(len(t["content"]) for t in sample.conversation) + 16 * len(sample.images)


def score_samples(loaded, samples: Sequence[Sample], image_loader, cfg: ScoreConfig, out_dir: Path,
                  rank: int = 0, world: int = 1, progress: bool = True, sketch: bool = True) -> None:
    """Write this rank's shards of the scoring pass under ``out_dir`` (resumable); sketch=False: no sketches.

    ``samples`` is any sequence that slices into samples; only ``len`` and one
    shard's slice at a time are asked of it, so a lazy view of the pool
    (``Pool.view``) keeps one shard of samples in memory, not the pool.
    """
    from safetensors.torch import save_file
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    S, n = cfg.shard_size, len(samples)
    shards = [i for i in range(-(-n // S)) if i % world == rank]
    todo = [i for i in shards if not (out_dir / f"shard_{i:05d}.done").exists()]
    if not todo:
        return
    scorer = Scorer(loaded, cfg, image_loader, sketch=sketch)
    # What this pass really computes, for the round's record and the log.
    (out_dir / "experts.json").write_text(json.dumps({"experts": scorer.experts, "sketches": bool(sketch)}))
    if progress:
        print(f"scoring experts: {', '.join(scorer.experts) or 'none'}" + (" + gradient sketches" if sketch else ""))
    try:
        bar = tqdm(total=sum(min(S, n - i * S) for i in todo), desc="score+sketch", unit="sample",
                   disable=not progress, leave=False)
        for i in todo:
            part = list(samples[i * S:(i + 1) * S])  # a lazy pool view fetches the shard's rows only now
            # Batch samples of similar length (less padding), then restore the shard's order.
            order = sorted(range(len(part)), key=lambda j: _length_hint(part[j]))
            sk, em, sc = [], [], {e: [] for e in scorer.experts}
            for b in range(0, len(part), cfg.sketch.batch_size):
                chunk = [part[j] for j in order[b:b + cfg.sketch.batch_size]]
                s, emb, scores = scorer.score_batch(chunk)
                if s is not None:
                    sk.append(s)
                em.append(emb)
                for e in scorer.experts:
                    sc[e].append(scores[e])
                bar.update(len(chunk))
            back = torch.argsort(torch.tensor(order))
            tensors = {"embed": torch.cat(em)[back].contiguous()}
            if sk:
                tensors["sketch"] = torch.cat(sk)[back].contiguous()
            tensors.update({f"score.{e}": torch.cat(v)[back].contiguous() for e, v in sc.items()})
            path = out_dir / f"shard_{i:05d}.safetensors"
            tmp = path.with_suffix(".tmp")
            save_file(tensors, tmp, metadata={"ids": json.dumps([s.id for s in part])})
            os.replace(tmp, path)
            (out_dir / f"shard_{i:05d}.done").touch()
        bar.close()
    finally:
        scorer.close()


def load_scores(out_dir: Path, n_samples: int, shard_size: int) -> ScoreResult:
    """A finished pass's shards as one in-memory ScoreResult (every shard must be done).

    The loop does not hold a round in memory: it copies the shards into a
    memory-mapped column store (``score_store.consolidate`` with an ``out_dir``).
    """
    return consolidate(out_dir, n_samples, shard_size)


@torch.no_grad()
def embed_samples(loaded, samples: Sequence[Sample], image_loader, cfg: ScoreConfig, progress: bool = True,
                  out: Path | None = None) -> np.ndarray:
    """(N, H) float32 unit rows: mean-pooled last hidden states, for pruning when no scoring pass ran.

    ``samples`` is sliced one shard (``cfg.shard_size``) at a time, so a lazy
    pool view keeps one shard in memory. ``out``: the rows go to a ``.npy``
    file there and a read-only memmap of it is returned (nothing N-sized in memory).
    """
    from tqdm import tqdm

    n, S, B = len(samples), cfg.shard_size, cfg.sketch.batch_size
    rows = None
    bar = tqdm(total=n, desc="embed", disable=not progress, leave=False)
    for a in range(0, n, S):
        part = list(samples[a:a + S])
        for b in range(0, len(part), B):
            batch = loaded.collate(part[b:b + B], image_loader)
            e = torch.nn.functional.normalize(loaded.embed(batch), dim=-1).cpu().numpy().astype(np.float32)
            if rows is None:
                tmp = None if out is None else Path(out).with_suffix(".tmp.npy")
                rows = (np.empty((n, e.shape[1]), np.float32) if tmp is None else
                        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, e.shape[1])))
            rows[a + b:a + b + len(e)] = e
            bar.update(len(e))
    bar.close()
    if rows is None:
        raise ValueError("cannot embed zero samples")
    if out is None:
        return rows
    rows.flush()
    del rows
    os.replace(Path(out).with_suffix(".tmp.npy"), out)
    return np.load(out, mmap_mode="r")


def plan_rescoring(ids: list[str], previous: dict[str, int], t: int, refresh: float) -> tuple[list[int], dict[str, int]]:
    """Which of the pool's samples round ``t`` scores, and where every sample's scores then live.

    ids: the active pool, in order; previous: sample id -> the round whose
    scoring pass holds its current scores (empty before the first pass).
    Returns (positions in ``ids`` to score now, in pool order; id -> round for
    every id). Unscored samples are always scored; of the others,
    ceil(refresh x count) are re-scored, stalest first (ties: pool order). A
    pure function, so every process and every resumed attempt plans the same.
    """
    old = [i for i, x in enumerate(ids) if x in previous]
    k = int(np.ceil(refresh * len(old) - 1e-9))
    again = set(sorted(old, key=lambda i: (previous[ids[i]], i))[:k])
    todo = [i for i, x in enumerate(ids) if x not in previous or i in again]
    scored = set(todo)
    return todo, {x: t if i in scored else previous[x] for i, x in enumerate(ids)}


def gather_scores(ids: list[str], sources: dict[str, int], load_round, out_dir: Path | None = None) -> ScoreResult:
    """See :func:`lifelong.selection.score_store.gather_scores`."""
    return store_gather(ids, sources, load_round, out_dir)
