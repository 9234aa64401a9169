"""GPTQ rounding for the weight-quantized recipes (`--algorithm gptq`), soft prompt in context.

Round-to-nearest rounds every weight on its own. GPTQ (Frantar et al. 2022) rounds one input column
at a time and moves the rounding error onto the columns not yet rounded, weighted by the inverse
Hessian of the layer's inputs, H = sum x x^T over calibration tokens: the layer's outputs on those
inputs stay close to fp32 rather than its weights. Columns go in order of decreasing input energy,
with round-to-nearest's group scales. The inputs are the fp32 model's activations on
chat-templated prompts from the distillation training files with the soft prompt's K/V in the cache,
so the rounding serves the activations the safety behavior produces. The grid is the recipe's own
(symmetric, one scale per group of `group_size` inputs, torchao's absmax / 7.5 for 4 bits): the
result is stored as exactly these integers and scales, in the .pte (torchao) and in MatMulNBits (ONNX).
What it changes, measured: docs/lab/runs.md.
"""
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from softfold.calibrate.prompts import prefix_calibration_prompts
from softfold.export.quantize import RoundedWeight, in_layers
from softfold.inputs.base_model import BaseModel
from softfold.inputs.chat_template import chat_ids
from softfold.inputs.soft_prompt import SoftPrompt
from softfold.reference.greedy import KV, expand_cache, prefix_cache


@dataclass(frozen=True)
class GPTQConfig:
    """Calibration for GPTQ: prompts from the distillation training files (`prefix_calibration_prompts`)."""
    prompts_per_file: int = 64
    damp: float = 0.01  # added to H's diagonal, as a fraction of its mean: keeps the inverse well conditioned
    batch_size: int = 16


def _grid(bits: int) -> tuple[int, int, float]:
    """(qmin, qmax, absmax-to-scale divisor) of torchao's symmetric grid: 4 bits -> -8..7, scale absmax / 7.5."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return qmin, qmax, (qmax - qmin) / 2


@torch.no_grad()
def gptq(weight: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int, damp: float = 0.01,
         block: int = 128) -> RoundedWeight:
    """Round `weight` [out, in] one input column at a time, the columns with the largest input energy (H's
    diagonal) first ("act-order"); `hessian` [in, in] of the layer's inputs. Each group's scale is
    round-to-nearest's, from the unrounded weights ("static groups"), so groups stay contiguous in any
    order. group_size 0: one scale per output channel."""
    out_features, in_features = weight.shape
    group = group_size or in_features
    qmin, qmax, divisor = _grid(bits)
    w = weight.double().clone()
    h = hessian.double().clone()
    dead = h.diagonal() == 0  # inputs that were always zero: any weight there is free
    h[dead, dead] = 1
    w[:, dead] = 0
    # in float32 as torchao computes it: each group's extreme weight sits exactly on a rounding tie
    scales = (w.float().unflatten(1, (-1, group)).abs().amax(-1) / divisor).clamp_min(1e-12)
    order = torch.argsort(h.diagonal(), descending=True, stable=True)
    w, h = w[:, order], h[order][:, order]
    h.diagonal().add_(damp * h.diagonal().mean())
    h_inv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.zeros(out_features, in_features, dtype=torch.int8)
    for start in range(0, in_features, block):
        end = min(start + block, in_features)
        w_block, err = w[:, start:end].clone(), torch.zeros(out_features, end - start, dtype=torch.float64)
        h_block = h_inv[start:end, start:end]
        for i in range(end - start):
            column = int(order[start + i])
            scale = scales[:, column // group]
            qi = (w_block[:, i].float() * (1.0 / scale)).round().clamp(qmin, qmax)
            q[:, column] = qi.to(torch.int8)
            err[:, i] = (w_block[:, i] - qi.double() * scale.double()) / h_block[i, i]
            w_block[:, i:] -= err[:, i:i + 1] * h_block[i:i + 1, i:]
        w[:, end:] -= err @ h_inv[start:end, end:]
    return RoundedWeight(q, scales)


@torch.no_grad()
def input_hessians(model: nn.Module, kv: KV, prompt_ids: list[list[int]], names: list[str],
                   batch_size: int = 16, prefix: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """sum x x^T of the inputs of the Linears `names` (HF names without "model."), over the prompts' tokens,
    the prefix K/V `kv` in the cache. Prompts are right-padded in batches; padding rows are left out.
    Linears called one after another on the same tensor (q, k, v; gate, up) share one sum.
    `prefix`: the soft prompt's embeddings [N, hidden], when the bundle computes its positions itself (virtual
    tokens): their inputs join the sums once per prompt, as often as the runtime computes them."""
    modules = {n.removeprefix("model."): m for n, m in model.named_modules()}
    sums = {n: torch.zeros(modules[n].in_features, modules[n].in_features, dtype=torch.float64) for n in names}
    valid = torch.zeros(0, dtype=torch.bool)
    weight = [1.0]  # how many times a row counts
    last: list = [None, None]  # the previous hook's input tensor and Linear name

    def hook(name: str):
        def accumulate(module, args):
            if args[0] is last[0]:
                sums[name] = sums[last[1]]
                return
            last[:] = args[0], name
            x = args[0].reshape(-1, args[0].shape[-1])[valid]
            sums[name].add_(x.T @ x, alpha=weight[0])  # fp32 within a batch, fp64 across batches
        return accumulate

    # the LM head's inputs are the decoder's outputs, taken by hand: the logits (a fifth of the work) are never needed
    head = hook("lm_head") if "lm_head" in names else None
    hooks = [modules[n].register_forward_pre_hook(hook(n)) for n in names if n != "lm_head"]
    decoder = getattr(model, model.base_model_prefix)
    n_prefix = kv[0][0].shape[1] if kv else 0
    try:
        if prefix is not None:
            valid, weight[0] = torch.ones(prefix.shape[0], dtype=torch.bool), float(len(prompt_ids))
            decoder(inputs_embeds=prefix.float().unsqueeze(0))  # the runtime's prefill reads no logits there
            weight[0], last[:] = 1.0, (None, None)
        for i in tqdm(range(0, len(prompt_ids), batch_size), desc="GPTQ activations", unit="batch", leave=False):
            chunk = prompt_ids[i:i + batch_size]
            width = max(map(len, chunk))
            mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in chunk])
            valid = mask.bool().flatten()
            hidden = decoder(input_ids=torch.tensor([p + [0] * (width - len(p)) for p in chunk]),
                             attention_mask=torch.cat([torch.ones(len(chunk), n_prefix, dtype=mask.dtype), mask], 1),
                             past_key_values=expand_cache(model, kv, len(chunk)), use_cache=True).last_hidden_state
            if head is not None:
                head(modules["lm_head"], (hidden,))
    finally:
        for h in hooks:
            h.remove()
        last[:] = None, None
    return sums


def gptq_linears(model: nn.Module, group_size: int, skip: tuple[str, ...] = ()) -> list[str]:
    """The Linears GPTQ rounds: those the recipe quantizes at `group_size` (the group divides their inputs),
    minus `skip` (layers kept at 8 bits stay round-to-nearest)."""
    names = [n.removeprefix("model.") for n, m in model.named_modules() if isinstance(m, nn.Linear)
             and (group_size == 0 or m.in_features % group_size == 0)]
    return [n for n in names if not in_layers(n, skip)]


def gptq_round(base: BaseModel, soft_prompt: SoftPrompt | None, bits: int, group_size: int, skip: tuple[str, ...] = (),
               config: GPTQConfig = GPTQConfig(), virtual_tokens: bool = False) -> dict[str, RoundedWeight]:
    """GPTQ-rounded weights of every Linear the recipe quantizes, by module name of the folded model
    ("layers.0.self_attn.q_proj", "lm_head"). `virtual_tokens`: the bundle computes the soft prompt's positions
    with these weights (prefix-kv bundles hold them as fp32 K/V), so GPTQ must see their inputs too: rounded for
    the prompt tokens alone, the virtual tokens' outputs come out worse than round-to-nearest's. No soft prompt (a
    bundle of a LoRA alone): the prompts alone, an empty cache. Deterministic: the same model,
    prompt and recipe give the same integers, so `export` and `calibrate-prefix` each compute them. One thread,
    whatever the command's:
    a float sum split differently re-rounds near-tie weights, and the change cascades through GPTQ's columns
    (another machine's BLAS may still do so)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = base.model.eval()
        kv = prefix_cache(model, soft_prompt.embeddings) if soft_prompt else []
        prompts = [chat_ids(base.tokenizer, p) for p in prefix_calibration_prompts(config.prompts_per_file)]
        names = gptq_linears(model, group_size, skip)
        hessians = input_hessians(model, kv, prompts, names, config.batch_size,
                                  soft_prompt.embeddings if virtual_tokens else None)
        modules = {n.removeprefix("model."): m for n, m in model.named_modules()}
        return {n: gptq(modules[n].weight.detach(), hessians.pop(n), bits, group_size, config.damp)
                for n in tqdm(names, desc="GPTQ rounding", unit="linear", leave=False)}
    finally:
        torch.set_num_threads(threads)
