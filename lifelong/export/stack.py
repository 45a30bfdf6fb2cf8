"""A ``merge``-policy run as one PEFT adapter: every round's LoRA delta stacked.

Under ``adapter_policy: merge`` round i trains a fresh adapter on a base with
rounds 1..i-1 merged in, so the model after round t is

    W = W0 + s * (B_1 A_1 + ... + B_t A_t),  projector = round t's copy,

with s the LoRA scaling (alpha / r, or alpha / sqrt(r) with rsLoRA). That sum
is itself one LoRA of rank R = r * t:

    A = [A_1; ...; A_t]  (R x in),   B = s * [B_1, ..., B_t]  (out x R),

written with ``lora_alpha`` chosen so that the new scaling is 1. It loads with
plain ``peft`` like any other adapter. It equals the run's model up to the
base's dtype: the run rounded the merged weights to it after every merge (a
bf16 base differs by bf16 rounding; an fp32 base by float error).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"


class StackError(ValueError):
    """Adapters that cannot be stacked into one."""


def _scaling(conf: dict, r: int) -> float:
    alpha = float(conf["lora_alpha"])
    return alpha / math.sqrt(r) if conf.get("use_rslora") else alpha / r


def stack_adapters(dirs: list[Path], dest: Path) -> dict:
    """Write into ``dest`` the adapter whose delta is the sum of ``dirs``' deltas; returns its config.

    Every adapter must have the same LoRA config (rank, alpha, targets); the
    non-LoRA weights (the projector, a ``modules_to_save`` copy) come from the
    last one, which is what the run's model holds after its last round.
    """
    import torch
    from safetensors.torch import load_file, save_file

    if not dirs:
        raise StackError("no adapters to stack")
    confs = [json.loads((Path(d) / CONFIG).read_text(encoding="utf-8")) for d in dirs]
    first = confs[0]
    same = ("r", "lora_alpha", "use_rslora", "target_modules", "modules_to_save", "layers_to_transform")
    for d, c in zip(dirs[1:], confs[1:]):
        diff = [k for k in same if c.get(k) != first.get(k)]
        if diff:
            raise StackError(f"adapter {d} differs from {dirs[0]} in {diff}; only identical LoRA configs stack")
    if first.get("rank_pattern") or first.get("alpha_pattern") or first.get("use_dora") or first.get("bias", "none") != "none":
        raise StackError(f"adapter {dirs[0]}: rank/alpha patterns, DoRA and LoRA biases cannot be stacked")
    r = int(first["r"])
    s = _scaling(first, r)
    weights = [load_file(str(Path(d) / WEIGHTS)) for d in dirs]
    out: dict[str, torch.Tensor] = {}
    for key in weights[0]:
        if ".lora_embedding_" in key or ".lora_magnitude" in key:
            raise StackError(f"adapter {dirs[0]}: {key!r} cannot be stacked (only linear LoRA layers)")
        if key.endswith(".lora_A.weight"):
            b_key = key[: -len("lora_A.weight")] + "lora_B.weight"
            try:
                a = [w[key].float() for w in weights]
                b = [w[b_key].float() * s for w in weights]
            except KeyError as exc:
                raise StackError(f"an adapter lacks {exc.args[0]!r}") from None
            out[key] = torch.cat(a, dim=0).contiguous()
            out[b_key] = torch.cat(b, dim=1).contiguous()
        elif not key.endswith(".lora_B.weight"):
            out[key] = weights[-1][key].contiguous()
    rank = r * len(dirs)
    conf = dict(first)
    conf["r"] = rank
    conf["lora_alpha"] = math.sqrt(rank) if first.get("use_rslora") else float(rank)  # new scaling: 1
    conf["lora_dropout"] = first.get("lora_dropout", 0.0)
    dest.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dest / WEIGHTS), metadata={"format": "pt"})
    (dest / CONFIG).write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return conf
