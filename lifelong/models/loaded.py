"""``load_model(cfg)``: one model API for both families.

What differs between the composed model and an HF model sits in two small
backends (how images become tokens and tensors, how hidden states and
generations are computed); everything else (chat encoding, label masking,
padding, losses, LoRA plumbing, adapters) is written once in ``LoadedModel``.

Batches (``LoadedModel.collate``) are dicts of CPU tensors:

- ``input_ids`` (B, T) long, right-padded; images expanded into image tokens.
- ``attention_mask`` (B, T) long, 1 on real tokens.
- ``labels`` (B, T) long, aligned with ``input_ids`` (HF convention): the
  token id on response tokens (assistant turns incl. their end-of-turn token),
  -100 everywhere else. The model predicts ``labels[:, t]`` from positions < t.
- composed family: ``image_features`` (N, K, C) float32, the cached encoder
  features of the N images of the batch in order (N may be 0).
- HF family: the processor's image tensors (``pixel_values``, and e.g.
  ``image_grid_thw``, ``pixel_attention_mask``, ``image_sizes``) of each
  sample, concatenated over the batch and zero-padded where samples differ in
  crops/tiles (families/hf/backend.py); absent without images. Families whose processor
  returns per-token types get them as (B, T) (``token_type_ids`` for Gemma 3,
  ``mm_token_type_ids`` for Qwen2-VL): 1 on image tokens.
"""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from lifelong.config import to_dict
from lifelong.data.sample import Sample
from lifelong.machine import resolve_device, resolve_dtype
from lifelong.models.backends import ImageLoader
from lifelong.models.chat import IGNORE, Encoded, sample_messages, truncate
from lifelong.models.config import ModelConfig
from lifelong.models.families import FAMILIES

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MODEL_CONFIG_FILE = "lifelong_model.json"


def mean_pool(h: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, H) hidden states, (B, T) mask -> (B, H) float32 mean over real (non-pad) tokens."""
    m = attention_mask.to(h.device).unsqueeze(-1).float()
    return (h.float() * m).sum(1) / m.sum(1).clamp(min=1)


# ---- the model API ------------------------------------------------------------


class LoadedModel:
    """A LoRA-wrapped multimodal model with batching, losses, generation and adapters.

    ``model`` is the ``peft.PeftModel``; LoRA sits on the LM's decoder layers and
    the projector is a ``modules_to_save`` copy (when ``lora.train_projector``),
    so ``save_adapter`` writes everything that training changes.
    """

    def __init__(self, cfg: ModelConfig):
        from peft import LoraConfig, get_peft_model

        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        self.cfg = cfg
        self.device = torch.device(resolve_device(cfg.device))
        self.dtype = DTYPES[resolve_dtype(cfg.dtype, self.device.type)]
        self.backend = FAMILIES[cfg.family].backend()(cfg, self.device, self.dtype)
        self.tokenizer = self.backend.tokenizer
        base = self.backend.module
        decoder = self.backend.decoder(base)
        prefix = next(n for n, m in base.named_modules() if m is decoder)
        self.layers_prefix = f"{prefix}.layers" if prefix else "layers"
        n_layers = len(decoder.layers)
        layers = cfg.lora.layers if cfg.lora.layers is not None else list(range(n_layers))
        bad = [i for i in layers if not 0 <= i < n_layers]
        if bad:
            raise ValueError(f"lora.layers {bad} out of range: the LM has {n_layers} decoder layers")
        self.lora_layers = sorted(set(layers))
        # A regex, so that LoRA lands only on the LM's decoder layers (a vision
        # tower has q_proj/v_proj too).
        target = (
            rf"{re.escape(self.layers_prefix)}\.({'|'.join(map(str, self.lora_layers))})\."
            rf"(?:.*\.)?({'|'.join(map(re.escape, cfg.lora.target_modules))})"
        )
        lora = LoraConfig(
            r=cfg.lora.rank,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=target,
            modules_to_save=list(self.backend.projector_names) if cfg.lora.train_projector else None,
        )
        self._lora_config = lora
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed if cfg.init_seed is None else cfg.init_seed)
            self.model = get_peft_model(base, lora)
        self._fp32_projector()
        if not self.lora_modules():
            raise ValueError(
                f"lora.target_modules {cfg.lora.target_modules} match no module of the LM's decoder layers"
            )
        self.model.eval()

    # -- batching --------------------------------------------------------------

    @property
    def base(self):
        """The underlying model, LoRA layers injected (same modules as ``model``)."""
        return self.model.get_base_model()

    def _encode(self, sample: Sample, image_loader, blank: bool, generation: bool):
        """(Encoded, the sample's image payload); images cut off by ``max_length`` are left out of both."""
        chat = self.backend.chat
        messages = sample_messages(sample, self.cfg.system_prompt)
        keys = list(sample.images[: chat.count_images(messages, generation)])  # generation: the prompt's images
        side = "left" if generation else "right"
        expansions, payload = self.backend.prepare_images(keys, image_loader, blank)
        for _ in range(len(keys) + 1):
            enc = (chat.encode_prompt if generation else chat.encode)(messages, expansions, sample.id)
            enc, kept = truncate(enc, self.cfg.max_length, side, sample.id)
            if len(kept) == len(keys):
                return enc, payload
            # Images were cut off: the payload must hold the kept ones only, and
            # a family may expand fewer images differently (LLaVA-OneVision).
            new, payload = self.backend.prepare_images([keys[i] for i in kept], image_loader, blank)
            if new == [expansions[i] for i in kept]:
                return enc, payload
            expansions = [new[kept.index(i)] if i in kept else e for i, e in enumerate(expansions)]
        raise RuntimeError(f"sample {sample.id}: no stable truncation of its images within max_length")

    def _pad(self, encs: list[Encoded], side: str) -> dict[str, torch.Tensor]:
        T = max(len(e.ids) for e in encs)
        B = len(encs)
        ids = torch.full((B, T), self.backend.pad_id, dtype=torch.long)
        mask = torch.zeros((B, T), dtype=torch.long)
        labels = torch.full((B, T), IGNORE, dtype=torch.long)
        for b, e in enumerate(encs):
            n = len(e.ids)
            sl = slice(0, n) if side == "right" else slice(T - n, T)
            ids[b, sl] = torch.tensor(e.ids, dtype=torch.long)
            mask[b, sl] = 1
            labels[b, sl] = torch.where(torch.tensor(e.labels), torch.tensor(e.ids), IGNORE)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, **self.backend.token_types(ids)}

    def collate(self, samples: list[Sample], image_loader: ImageLoader, *, blank_images: bool = False) -> dict:
        """Instruction-tuning batch of ``samples`` (see the module docstring for its keys).

        ``blank_images=True`` replaces every image by a mid-gray one of the same
        size: same tokens and labels, no visual content (the grounding score).
        """
        encs, payloads = [], []
        for s in samples:
            enc, p = self._encode(s, image_loader, blank_images, generation=False)
            encs.append(enc)
            payloads.append(p)
        batch = self._pad(encs, "right")
        batch.update(self.backend.batch_images(payloads, image_loader))
        return batch

    def _inputs(self, batch: dict) -> dict:
        """Model inputs on the model's device (float tensors in the model's dtype)."""
        out = {}
        for k, v in batch.items():
            if k == "labels":
                continue
            v = v.to(self.device)
            out[k] = v.to(self.dtype) if v.is_floating_point() else v
        return out

    # -- losses and logits ---------------------------------------------------------

    def hidden_states(self, batch: dict) -> torch.Tensor:
        """Last hidden states of the LM: (B, T, H)."""
        return self.backend.hidden(self.base, self._inputs(batch))

    def forward(self, batch: dict) -> torch.Tensor:
        """Logits aligned with ``batch["labels"]``: (B, T, V), float32.

        ``logits[:, t]`` is the model's prediction of the token at position t
        (made from positions < t), so ``cross_entropy(logits[m], labels[m])``
        over ``m = labels != -100`` is the loss. Position 0 has no prediction
        and is zero.
        """
        h = self.hidden_states(batch)
        logits = self.backend.head(self.base)(h).float()  # (B, T, V)
        return torch.cat([torch.zeros_like(logits[:, :1]), logits[:, :-1]], dim=1)

    def response_logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits at response positions only, the cheap way (the LM head runs on those alone).

        Returns ``(logits (N, V) float32, targets (N,), rows (N,))``: N response
        tokens of the batch, their target ids, and the batch row of each.
        """
        return self.head_at_responses(self.hidden_states(batch), batch)

    def head_at_responses(self, h: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``response_logits`` from hidden states ``h`` (B, T, H) already computed for ``batch``."""
        labels = batch["labels"].to(h.device)[:, 1:]  # target of position t is labels[t + 1]
        sel = labels != IGNORE  # (B, T-1)
        logits = self.backend.head(self.base)(h[:, :-1][sel]).float()  # (N, V)
        rows = sel.nonzero()[:, 0]
        return logits, labels[sel], rows

    def per_sample_loss(self, batch: dict) -> torch.Tensor:
        """Mean NLL over each sample's response tokens: (B,) float32, differentiable.

        A sample with no response token (all cut by truncation) gets 0.
        """
        logits, targets, rows = self.response_logits(batch)
        nll = F.cross_entropy(logits, targets, reduction="none")  # (N,)
        B = batch["labels"].shape[0]
        total = torch.zeros(B, device=nll.device, dtype=nll.dtype).index_add(0, rows, nll)
        count = torch.zeros(B, device=nll.device, dtype=nll.dtype).index_add(0, rows, torch.ones_like(nll))
        return total / count.clamp(min=1)

    def token_logprobs(self, batch: dict) -> torch.Tensor:
        """log p(labels[:, t]) at response positions, 0 elsewhere: (B, T) float32."""
        logits, targets, rows = self.response_logits(batch)
        lp = -F.cross_entropy(logits, targets, reduction="none")
        out = torch.zeros(batch["labels"].shape, device=lp.device, dtype=lp.dtype)
        sel = batch["labels"].to(lp.device) != IGNORE
        sel[:, 0] = False
        out[sel] = lp
        return out

    @torch.no_grad()
    def embed(self, batch: dict) -> torch.Tensor:
        """Mean of the last hidden state over real (non-pad) tokens: (B, H) float32."""
        with self._eval():
            return mean_pool(self.hidden_states(batch), batch["attention_mask"])

    # -- generation ------------------------------------------------------------------

    @contextlib.contextmanager
    def _eval(self):
        """Eval mode (no LoRA dropout) inside, the previous mode restored after."""
        was = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was)

    @torch.no_grad()
    def generate(
        self, samples: list[Sample], image_loader: ImageLoader, max_new_tokens: int = 32, batch_size: int = 8
    ) -> list[str]:
        """Greedy answers to each sample's prompt (its turns before the last assistant turn).

        Prompts are left-padded and batched by similar length; the answers come
        back in the order of ``samples``, special tokens removed, stripped.
        """
        encoded = [self._encode(s, image_loader, False, generation=True) for s in samples]
        order = sorted(range(len(samples)), key=lambda i: len(encoded[i][0].ids))
        answers: list[str] = [""] * len(samples)
        with self._eval():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                batch = self._pad([encoded[i][0] for i in chunk], "left")
                batch.update(self.backend.batch_images([encoded[i][1] for i in chunk], image_loader))
                new = self.backend.generate(
                    self.base,
                    self._inputs(batch),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.backend.pad_id,
                    eos_token_id=self.backend.eos_id,
                )
                texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
                for i, text in zip(chunk, texts):
                    answers[i] = text.strip()
        return answers

    # -- LoRA and adapters -------------------------------------------------------------

    def lora_modules(self, layers: list[int] | None = None) -> dict:
        """LoRA-wrapped Linear modules (``peft`` ``LoraLayer``) by name, of decoder ``layers`` (None = all).

        Names are relative to ``base``. Each module's ``lora_A[adapter]`` /
        ``lora_B[adapter]`` are plain ``nn.Linear``: hook those for per-sample
        gradients (input activations x output gradients).
        """
        from peft.tuners.lora import LoraLayer

        pat = re.compile(rf"{re.escape(self.layers_prefix)}\.(\d+)\.")
        out = {}
        for name, m in self.base.named_modules():
            if not isinstance(m, LoraLayer):
                continue
            hit = pat.match(name)
            if hit and (layers is None or int(hit.group(1)) in layers):
                out[name] = m
        return out

    def lora_parameters(self, layers: list[int] | None = None) -> dict[str, torch.nn.Parameter]:
        """LoRA A/B weights of decoder ``layers`` (None = all): ``{"<module>.lora_A.weight": param}``."""
        adapter = self.model.active_adapter
        out = {}
        for name, m in self.lora_modules(layers).items():
            out[f"{name}.lora_A.weight"] = m.lora_A[adapter].weight
            out[f"{name}.lora_B.weight"] = m.lora_B[adapter].weight
        return out

    def trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Everything the optimiser updates: LoRA weights and the projector copy."""
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def save_adapter(self, directory: str | Path) -> Path:
        """Write the PEFT adapter (``adapter_config.json``, ``adapter_model.safetensors``).

        The model config goes beside it (``lifelong_model.json``) so the
        directory says which base model it adapts.
        """
        directory = Path(directory)
        self.model.save_pretrained(directory, safe_serialization=True)
        (directory / MODEL_CONFIG_FILE).write_text(json.dumps(to_dict(self.cfg), indent=1))
        return directory

    def merge_and_restart(self) -> None:
        """Fold the current adapter (LoRA and projector) into the base weights and attach a
        fresh adapter with the same config and the same seeded initialisation."""
        from peft import get_peft_model

        was = self.model.training
        base = self.model.merge_and_unload()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed if self.cfg.init_seed is None else self.cfg.init_seed)
            self.model = get_peft_model(base, self._lora_config)
        self._fp32_projector()
        self.model.train(was)

    def _fp32_projector(self) -> None:
        """Under a half dtype, the trainable projector copy keeps fp32 master weights.

        (AdamW on bf16 weights drops every update below ~2^-8 of the weight.)
        PEFT already keeps LoRA matrices in fp32; this does the same for the
        ``modules_to_save`` copies, with hooks that cast their floating inputs
        to fp32 and their output back to the model's dtype.
        """
        from peft.utils import ModulesToSaveWrapper

        if self.dtype == torch.float32:
            return
        for wrapper in [m for m in self.model.modules() if isinstance(m, ModulesToSaveWrapper)]:
            for copy in wrapper.modules_to_save.values():
                copy.float()
                if not getattr(copy, "_fp32_hooks", False):  # a deep copy carries its hooks along
                    copy.register_forward_pre_hook(_to_fp32_inputs, with_kwargs=True)
                    copy.register_forward_hook(_cast_output(self.dtype))
                    copy._fp32_hooks = True

    def load_adapter(self, directory: str | Path) -> None:
        """Load an adapter written by ``save_adapter`` into this model (same LoRA shape)."""
        from peft import PeftConfig
        from peft.utils import load_peft_weights, set_peft_model_state_dict

        directory = Path(directory)
        saved = PeftConfig.from_pretrained(directory)
        mine = self.model.peft_config[self.model.active_adapter]
        for field in ("r", "lora_alpha", "target_modules", "modules_to_save"):
            a, b = getattr(saved, field), getattr(mine, field)
            if (sorted(a) if isinstance(a, (list, set)) else a) != (sorted(b) if isinstance(b, (list, set)) else b):
                raise ValueError(f"adapter {directory}: {field} is {a!r}, this model's is {b!r}")
        weights = load_peft_weights(str(directory), device=str(self.device))
        result = set_peft_model_state_dict(self.model, weights)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise ValueError(f"adapter {directory}: weights that fit nothing in this model: {unexpected[:3]}")
        missing = [k for k in getattr(result, "missing_keys", []) or [] if "lora_" in k or "modules_to_save" in k]
        if missing:
            raise ValueError(f"adapter {directory}: no weights for {missing[:3]}")


def _to_fp32_inputs(module, args, kwargs):
    up = lambda v: v.float() if torch.is_tensor(v) and v.is_floating_point() else v  # noqa: E731
    return tuple(up(a) for a in args), {k: up(v) for k, v in kwargs.items()}


def _cast_output(dtype: torch.dtype):
    def hook(module, args, output):
        if torch.is_tensor(output) and output.is_floating_point():
            return output.to(dtype)
        if isinstance(output, tuple):
            return tuple(o.to(dtype) if torch.is_tensor(o) and o.is_floating_point() else o for o in output)
        return output

    return hook


def load_model(cfg: ModelConfig | None = None) -> LoadedModel:
    """The model named by ``cfg`` (default: the offline composed model), LoRA attached."""
    return LoadedModel(cfg or ModelConfig())
