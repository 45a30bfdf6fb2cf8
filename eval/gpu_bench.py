"""Sketch and training throughput of a random-init ~1B LLaVA-shaped model in bf16 on one GPU.

    python -m eval.gpu_bench [--batch 8] [--steps 5] [--tiny]

Vision: a CLIP-L-like tower (336 px, 14 px patches -> 576 image tokens, 24 layers
of width 1024); LM: a Llama of width 2048, 16 layers (~1B parameters in all).
Each sample is 576 image tokens + 256 text tokens, all text tokens trained on.
Sketch: per-sample LoRA gradients of the last decoder layer (lifelong's hooks)
in one backward pass. Train: LoRA on every decoder layer + AdamW. Prints
samples/s and peak GPU memory; ``--tiny`` shrinks everything for a CPU check.
"""
from __future__ import annotations

import argparse
import time

import torch


def build(tiny: bool, device: str):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    if tiny:
        vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                  image_size=28, patch_size=14)
        text = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=1000)
    else:
        vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                  num_attention_heads=16, image_size=336, patch_size=14)
        text = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=16, num_attention_heads=16,
                           num_key_value_heads=4, vocab_size=32064)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=text.vocab_size - 1,
                      image_seq_length=(vision.image_size // vision.patch_size) ** 2)
    dtype = torch.float32 if tiny else torch.bfloat16
    with torch.device(device):
        model = LlavaForConditionalGeneration(cfg).to(dtype)
    return model, cfg, dtype


def batch(cfg, n: int, text_len: int, device: str, dtype):
    k = cfg.image_seq_length
    ids = torch.randint(0, cfg.text_config.vocab_size - 2, (n, k + text_len), device=device)
    ids[:, 1 : k + 1] = cfg.image_token_index
    labels = ids.clone()
    labels[:, : k + 1] = -100
    size = cfg.vision_config.image_size
    pix = torch.randn(n, 3, size, size, device=device, dtype=dtype)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": pix}, labels


def per_sample_loss(model, inputs, labels):
    logits = model(**inputs).logits[:, :-1].float()
    tgt = labels[:, 1:]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, ignore_index=-100, reduction="none")
    return nll.sum(1) / (tgt != -100).sum(1)


def timed(fn, steps: int, n: int, device: str) -> tuple[float, float]:
    fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return steps * n / dt, peak


def main(argv=None) -> int:
    from peft import LoraConfig, get_peft_model

    from lifelong.selection.sketch import PerSampleGrads, lora_linears, only_these_trainable

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--text-len", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    torch.manual_seed(0)
    model, cfg, dtype = build(args.tiny, device)
    n_params = sum(p.numel() for p in model.parameters())
    last = cfg.text_config.num_hidden_layers - 1
    lora = LoraConfig(r=16, lora_alpha=32, target_modules=r"model\.language_model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj")
    model = get_peft_model(model, lora)
    inputs, labels = batch(cfg, args.batch, args.text_len, device, dtype)
    print(f"model: {n_params / 1e9:.2f}B parameters, {dtype}, {device}; batch {args.batch} x "
          f"{inputs['input_ids'].shape[1]} tokens")

    modules = {n: m for n, m in model.get_base_model().named_modules()
               if n.startswith(f"model.language_model.layers.{last}.") and hasattr(m, "lora_A")}
    grads = PerSampleGrads(lora_linears(modules))
    params = [m.weight for m in grads.modules.values()]

    def sketch():
        with only_these_trainable(model, params):
            per_sample_loss(model, inputs, labels).sum().backward()
            flat = grads.flat()
        for p in params:
            p.grad = None
        assert torch.isfinite(flat).all()

    sps, peak = timed(sketch, args.steps, args.batch, device)
    print(f"sketch: {sps:.1f} samples/s, peak {peak:.1f} GiB (per-sample grads of {grads.dim} LoRA weights)")
    grads.remove()

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def train():
        loss = per_sample_loss(model, inputs, labels).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)

    sps, peak = timed(train, args.steps, args.batch, device)
    print(f"train: {sps:.1f} samples/s, peak {peak:.1f} GiB (LoRA r=16 on every decoder layer, AdamW)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
