"""Selector experts: each turns one scoring pass into one float per sample.

Adding an expert is one function and one ``@expert`` line; the contract test
(tests/selection/test_selection_experts.py) runs over every registered name.

All experts read a ``PassOutputs`` of one batch: the logits at the N response
tokens of the batch (the LM head runs on those alone), their targets and the
batch row of each, and where declared, the per-sample gradient norm, the NLL
of the image-blanked pass, or CLIP similarities. Scores are NaN-free: a sample
with no response tokens scores 0 (and ppl 1).

An expert's scores are stored and shown as computed (``scores.parquet`` has
perplexities), but routing and CCS see them on the expert's selection scale
(:func:`selection_scores`): ``ppl`` enters as log perplexity, the mean
response NLL, as the reference code feeds it to both. On the raw scale a
perplexity is heavy-tailed (27 to 125,000 over the 300 samples of the demo's
first round): CCS's equal-width strata then put the bulk of the pool in one or
two strata, and 79% of the draw came from the top 30% of perplexities; its
z-normalised histogram has 1.35 bits against 4.26 in log, so routing could
hardly ever pick it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

@dataclass
class PassOutputs:
    """What one scoring pass over a batch of B samples produced."""

    logits: torch.Tensor  # (N, V) at the batch's N response tokens
    targets: torch.Tensor  # (N,) target token ids
    rows: torch.Tensor  # (N,) batch row of each response token
    batch_size: int
    grad_norm: torch.Tensor | None = None  # (B,) ||g(z)||_2 before projection
    blank_nll: torch.Tensor | None = None  # (B,) mean response NLL with images blanked
    has_image: torch.Tensor | None = None  # (B,) bool
    clip_sim: torch.Tensor | None = None  # (B,) cosine(image, text) from open_clip
    ids: list[str] = field(default_factory=list)
    seed: int = 0

    _cache: dict = field(default_factory=dict, repr=False)

    def token_stats(self) -> dict[str, torch.Tensor]:
        """Per-token NLL, EL2N and entropy over response tokens, computed once."""
        if not self._cache:
            logp = torch.log_softmax(self.logits.float(), dim=-1)  # (N, V)
            nll = -logp.gather(-1, self.targets.unsqueeze(-1)).squeeze(-1)  # (N,)
            p = logp.exp()
            ent = -(p * logp).sum(-1)  # (N,)
            # ||onehot(y) - p||_2 = sqrt(sum p^2 - 2 p_y + 1)
            el2n = ((p * p).sum(-1) - 2 * (-nll).exp() + 1).clamp(min=0).sqrt()  # (N,)
            self._cache.update(nll=self.per_sample_mean(nll), entropy=self.per_sample_mean(ent),
                               el2n=self.per_sample_mean(el2n))
        return self._cache

    def per_sample_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean of per-token ``values`` (N,) over each sample's tokens: (B,)."""
        return per_sample_mean(values, self.rows, self.batch_size)


def per_sample_mean(values: torch.Tensor, rows: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N,) per-token values, (N,) rows -> (B,) means; 0 for a sample without tokens."""
    total = torch.zeros(batch_size, dtype=values.dtype, device=values.device).index_add(0, rows, values)
    count = torch.zeros(batch_size, dtype=values.dtype, device=values.device).index_add(
        0, rows, torch.ones_like(values))
    return total / count.clamp(min=1)


ExpertFn = Callable[[PassOutputs], torch.Tensor]


@dataclass(frozen=True)
class Expert:
    name: str
    fn: ExpertFn
    needs: frozenset[str]  # extra passes: "grad", "blank", "clip"
    doc: str
    scale: str = "linear"  # what routing and CCS see: "linear" (the score) or "log" (its logarithm)


EXPERTS: dict[str, Expert] = {}
SCALES = ("linear", "log")


def expert(name: str, needs: tuple[str, ...] = (), scale: str = "linear"):
    if scale not in SCALES:
        raise ValueError(f"expert {name!r}: scale must be one of {SCALES}, got {scale!r}")

    def deco(fn: ExpertFn) -> ExpertFn:
        EXPERTS[name] = Expert(name, fn, frozenset(needs), (fn.__doc__ or "").strip(), scale)
        return fn

    return deco


def selection_scores(name: str, scores) -> np.ndarray:
    """``scores`` (N,) of expert ``name`` on the scale routing and CCS work on (float64).

    A log-scale expert's scores are positive by construction (perplexity >= 1);
    a non-positive one would be a bug upstream and is refused rather than
    turned into -inf or NaN.
    """
    s = np.asarray(scores, dtype=np.float64)
    if EXPERTS[name].scale == "log":
        finite = s[~np.isnan(s)]
        if finite.size and finite.min() <= 0:
            raise ValueError(f"expert {name!r} is selected on a log scale but has a score <= 0 "
                             f"({finite.min()})")
        return np.log(s)
    return s


@expert("ppl", scale="log")
def perplexity(out: PassOutputs) -> torch.Tensor:
    """exp(mean NLL over response tokens); routing and CCS see its log, the mean NLL."""
    return out.token_stats()["nll"].exp()


@expert("el2n")
def el2n(out: PassOutputs) -> torch.Tensor:
    """Mean over response tokens of ||onehot(y) - softmax(logits)||_2."""
    return out.token_stats()["el2n"]


@expert("entropy")
def entropy(out: PassOutputs) -> torch.Tensor:
    """Mean over response positions of -sum p log p (nats)."""
    return out.token_stats()["entropy"]


@expert("grand", needs=("grad",))
def grand(out: PassOutputs) -> torch.Tensor:
    """||g(z)||_2 of the sketched LoRA parameters, before projection."""
    return out.grad_norm


@expert("ig", needs=("blank",))
def image_grounding(out: PassOutputs) -> torch.Tensor:
    """PPL(response | blank image) / PPL(response | image); > 1 when the image helps.

    Computed as exp(NLL_blank - NLL) for stability. Text-only samples get exactly 1.
    """
    ratio = (out.blank_nll - out.token_stats()["nll"]).exp()
    return torch.where(out.has_image.to(ratio.device), ratio, torch.ones_like(ratio))


@expert("clip", needs=("clip",))
def clip_score(out: PassOutputs) -> torch.Tensor:
    """Cosine similarity of open_clip image and text embeddings (0 for text-only)."""
    return out.clip_sim


@expert("random")
def random_score(out: PassOutputs) -> torch.Tensor:
    """Seeded uniform in [0, 1), a pure function of (seed, sample id)."""
    import hashlib

    vals = [int.from_bytes(hashlib.sha256(f"{out.seed}:{i}".encode()).digest()[:8], "big") / 2**64 for i in out.ids]
    return torch.tensor(vals, dtype=torch.float64)


# What the scoring pass computes by default (``score.experts``): every expert but ``clip``, which
# needs user-supplied CLIP weights. The routing candidates (``select.route_experts``) derive from
# the registry: :func:`routable`.
DEFAULT_SCORED = ("ppl", "el2n", "entropy", "grand", "ig", "random")
# Never a routing candidate: its flat histogram has maximal entropy by construction.
NEVER_ROUTED = ("random",)


def routable() -> list[str]:
    """Every registered expert that may compete for a cluster, in registration order (the tie-break order)."""
    return [e for e in EXPERTS if e not in NEVER_ROUTED]


def compute(names: list[str], out: PassOutputs) -> dict[str, torch.Tensor]:
    """Scores of the named experts for one batch, as float64 NaN-free tensors (B,)."""
    res = {}
    for name in names:
        v = EXPERTS[name].fn(out).double().cpu()
        res[name] = torch.nan_to_num(v, nan=0.0, posinf=1e30, neginf=-1e30)
    return res
