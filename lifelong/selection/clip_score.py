"""The ``clip`` expert's model: open_clip image-text agreement of a sample.

``ClipScorer.similarity`` gives, per sample, the cosine between the L2-normalised
open_clip embedding of its image and of its text (the user prompt with the
``<image>`` tokens removed, then the answer). The scoring pass puts it in
``PassOutputs.clip_sim``; ``embed_images`` gives the image embeddings themselves,
which pruning may use instead of the language model's hidden states.

Nothing is ever downloaded: the weights come from a local checkpoint file, or
from a ``local-dir:`` folder in open_clip's layout, or the model is a tiny
random one built from a config dict (tests, demos). A hub tag or ``hf-hub:``
name is refused with a message saying what to do instead.
"""
from __future__ import annotations

import copy
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from lifelong.data.sample import IMAGE_TOKEN, Sample

# A tiny open_clip CLIP (about 1.6M parameters, almost all in the 49408 x 32
# token table that the BPE tokenizer shipped inside open_clip needs): builds in
# milliseconds, so tests and CPU demos can run the real code path without weights.
TINY_CLIP: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}

# Text towers or tokenizers that open_clip fetches from the Hugging Face hub.
_HUB_TEXT_KEYS = ("hf_model_name", "hf_tokenizer_name")


@dataclass
class ClipConfig:
    """Which open_clip model scores image-text agreement (the ``clip`` expert).

    model: an open_clip architecture name (``open_clip.list_models()``, e.g.
        ``ViT-B-32``) or ``local-dir:/path`` (a folder holding
        ``open_clip_config.json`` and a checkpoint). Empty, with ``tiny`` false,
        means no CLIP model: requesting the ``clip`` expert is then an error.
    pretrained: path of a LOCAL checkpoint file (.safetensors/.pt/.bin) for
        ``model``. Never a hub tag such as ``openai``: nothing is downloaded.
        Required for a named architecture (random weights would score noise);
        must stay empty with ``local-dir:``; optional with ``tiny``.
    tiny: build a random CLIP from ``tiny_config`` instead (``model`` is then
        only a label). Keys of ``tiny_config`` are merged onto ``TINY_CLIP``, so
        an override names only what differs; the dict is the keyword arguments
        of ``open_clip.model.CLIP`` (embed_dim, vision_cfg, text_cfg, ...).
    seed: seeds the random initialisation of a tiny model (same seed, same model).
    batch_size: images (or texts) per encoder forward.
    device: torch device of the CLIP model.
    cache_images: image embeddings kept by image hash (least recently used
        dropped first), so a pool image is encoded once per round even when
        many samples share it; 0 turns the cache off. Each entry is D floats
        (ViT-B-32: 2 KiB).
    """

    model: str = ""
    pretrained: str = ""
    tiny: bool = False
    tiny_config: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(TINY_CLIP))
    seed: int = 0
    batch_size: int = 64
    device: str = "cpu"
    cache_images: int = 100_000


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def clip_text(sample: Sample) -> str:
    """The text CLIP compares with the image: user prompt without ``<image>``, then the answer.

    Whitespace is collapsed; the tokenizer truncates to the model's context length
    (the prompt comes first, so a long answer is what gets cut).
    """
    if any(t["role"] == "assistant" for t in sample.conversation):
        prompt, answer = sample.prompt_and_answer()
    else:  # no answer yet: the user turns alone
        prompt, answer = "\n".join(t["content"] for t in sample.conversation if t["role"] == "user"), ""
    return " ".join(f"{prompt.replace(IMAGE_TOKEN, ' ')} {answer}".split())


def _refuse_download(cfg: ClipConfig) -> None:
    """Raise if ``cfg`` would make open_clip fetch anything from the network."""
    from open_clip.pretrained import get_pretrained_cfg

    if cfg.model.startswith("hf-hub:"):
        raise ValueError(f"clip.model={cfg.model!r} names a Hugging Face hub model; lifelong never downloads "
                         "weights. Download it yourself and set clip.model to 'local-dir:<folder>' "
                         "(or an architecture name plus clip.pretrained=<local checkpoint file>).")
    if not cfg.pretrained or os.path.isfile(cfg.pretrained):
        return
    name = cfg.model.replace("/", "-")
    if cfg.pretrained.startswith("hf-hub:") or (name and get_pretrained_cfg(name, cfg.pretrained)):
        raise ValueError(f"clip.pretrained={cfg.pretrained!r} is a hub tag, and lifelong never downloads weights. "
                         f"Download the checkpoint of {cfg.model!r} yourself and set clip.pretrained to the path of "
                         "that local file.")
    raise FileNotFoundError(f"clip.pretrained={cfg.pretrained!r} is not a file; it must be the path of a local "
                            "open_clip checkpoint (hub tags are not accepted: nothing is downloaded)")


def _model_cfg(cfg: ClipConfig) -> dict:
    """The open_clip model config dict ``cfg`` resolves to (nothing is built yet)."""
    import json

    import open_clip

    if cfg.tiny:
        return _deep_merge(TINY_CLIP, cfg.tiny_config)
    if cfg.model.startswith("local-dir:"):
        if cfg.pretrained:
            raise ValueError("clip.pretrained must be empty with a 'local-dir:' model (the folder holds the weights)")
        path = os.path.join(cfg.model[len("local-dir:"):], "open_clip_config.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"clip.model={cfg.model!r}: {path} is missing")
        with open(path, encoding="utf-8") as f:
            return json.load(f)["model_cfg"]
    model_cfg = open_clip.get_model_config(cfg.model.replace("/", "-"))
    if model_cfg is None:
        raise ValueError(f"clip.model={cfg.model!r} is not an open_clip architecture; "
                         f"known: {', '.join(open_clip.list_models())}")
    if not cfg.pretrained:
        raise ValueError(f"clip.model={cfg.model!r} needs clip.pretrained=<local checkpoint file>: "
                         "random weights would make the clip expert score noise (use clip.tiny for tests)")
    return model_cfg


class ClipScorer:
    """An open_clip model, its image transform and tokenizer, in eval mode on ``cfg.device``."""

    def __init__(self, model: torch.nn.Module, preprocess, tokenizer, cfg: ClipConfig):
        self.model = model.eval().requires_grad_(False).to(cfg.device)
        self.preprocess = preprocess  # PIL image -> (3, H, W) float tensor
        self.tokenizer = tokenizer  # list[str] -> (N, context_length) long, truncated
        self.cfg = cfg
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()  # image hash -> (D,) float32, unit norm
        with torch.inference_mode():  # D, the joint embedding width (towers differ in where they keep it)
            self.dim = int(self.model.encode_text(self.tokenizer([""]).to(cfg.device)).shape[-1])

    @classmethod
    def from_config(cls, cfg: ClipConfig) -> ClipScorer | None:
        """Build the configured model; None when none is configured (empty model, not tiny).

        Raises ValueError / FileNotFoundError, with the fix in the message, for a
        hub tag, an ``hf-hub:`` name, a hub-backed text tower, or a missing file.
        """
        if not cfg.model and not cfg.tiny:
            return None
        import open_clip
        from open_clip.transform import PreprocessCfg, image_transform_v2

        _refuse_download(cfg)
        model_cfg = _model_cfg(cfg)
        text_cfg = model_cfg.get("text_cfg", {})
        hub_keys = [k for k in _HUB_TEXT_KEYS if text_cfg.get(k)]
        if hub_keys or (not cfg.tiny and "siglip" in cfg.model.lower()):
            raise ValueError(f"clip.model={cfg.model!r}: its text tower or tokenizer comes from the Hugging Face hub "
                             f"({', '.join(hub_keys) or 'SigLIP tokenizer'}); only models with open_clip's built-in "
                             "BPE tokenizer and text transformer are supported offline")

        if cfg.tiny:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                model = open_clip.model.CLIP(**model_cfg)
            if cfg.pretrained:
                open_clip.load_checkpoint(model, cfg.pretrained)
            tokenizer = open_clip.tokenizer.SimpleTokenizer(
                context_length=model.context_length, **(text_cfg.get("tokenizer_kwargs") or {}))
        else:
            model = open_clip.create_model(cfg.model, pretrained=cfg.pretrained or None, device="cpu",
                                           pretrained_image=False, pretrained_text=False)
            tokenizer = open_clip.get_tokenizer(cfg.model)
            if not isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer):
                raise ValueError(f"clip.model={cfg.model!r} needs a {type(tokenizer).__name__}; "
                                 "only open_clip's built-in BPE tokenizer is supported offline")
        # The model's own preprocessing (size, mean/std, resize mode), eval variant.
        pp = open_clip.factory.merge_preprocess_dict(PreprocessCfg(), open_clip.get_model_preprocess_cfg(model))
        preprocess = image_transform_v2(PreprocessCfg(**pp), is_train=False)
        return cls(model, preprocess, tokenizer, cfg)

    @torch.inference_mode()
    def _encode_hashes(self, hashes: list[str], image_loader) -> dict[str, torch.Tensor]:
        """Unit image embeddings of distinct image hashes, (D,) float32 each, through the cache."""
        out = {h: self._cache[h] for h in hashes if h in self._cache}
        for h in out:
            self._cache.move_to_end(h)
        todo = [h for h in hashes if h not in out]
        B = self.cfg.batch_size
        for i in range(0, len(todo), B):
            chunk = todo[i:i + B]
            pixels = torch.stack([self.preprocess(image_loader(h)) for h in chunk]).to(self.cfg.device)  # (b, 3, H, W)
            emb = self.model.encode_image(pixels, normalize=True).float().cpu()  # (b, D)
            for h, e in zip(chunk, emb):
                out[h] = e
                if self.cfg.cache_images > 0:
                    self._cache[h] = e
                    if len(self._cache) > self.cfg.cache_images:
                        self._cache.popitem(last=False)
        return out

    def embed_images(self, samples: list[Sample], image_loader) -> torch.Tensor:
        """(B, D) float32 unit image embeddings; zero rows for text-only samples.

        A sample with several images gets the renormalised mean of their unit
        embeddings.
        """
        hashes = list(dict.fromkeys(h for s in samples for h in s.images))
        emb = self._encode_hashes(hashes, image_loader)
        out = torch.zeros(len(samples), self.dim)  # (B, D)
        for i, s in enumerate(samples):
            if s.images:
                out[i] = torch.nn.functional.normalize(torch.stack([emb[h] for h in s.images]).mean(0), dim=0)
        return out

    @torch.inference_mode()
    def embed_texts(self, samples: list[Sample]) -> torch.Tensor:
        """(B, D) float32 unit embeddings of ``clip_text(sample)``."""
        parts = []
        for i in range(0, len(samples), self.cfg.batch_size):
            tokens = self.tokenizer([clip_text(s) for s in samples[i:i + self.cfg.batch_size]])  # (b, ctx)
            parts.append(self.model.encode_text(tokens.to(self.cfg.device), normalize=True).float().cpu())
        return torch.cat(parts) if parts else torch.zeros(0, self.dim)

    def similarity(self, samples: list[Sample], image_loader) -> torch.Tensor:
        """(B,) float64 cosine(image, text) in [-1, 1]; exactly 0.0 for text-only samples.

        0 is "no evidence either way": a text-only sample has no image to agree
        or disagree with, and 0 is what an unrelated image-text pair scores on
        average.
        """
        sim = torch.zeros(len(samples), dtype=torch.float64)
        idx = [i for i, s in enumerate(samples) if s.images]
        if idx:
            sub = [samples[i] for i in idx]
            img = self.embed_images(sub, image_loader).double()  # (b, D)
            txt = self.embed_texts(sub).double()  # (b, D)
            sim[idx] = (img * txt).sum(-1).clamp(-1.0, 1.0)
        return sim
