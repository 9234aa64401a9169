"""Tiny random-weight models, tokenizers, soft prompts, LoRA adapters and control vectors, built in code in seconds."""
import json
from pathlib import Path

import torch
from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.", "How do I bake bread at home?",
    "Tell me a story about a dragon and a knight.", "What is the capital of France? Paris.",
    "Explain photosynthesis in simple words.", "I cannot help with that request.",
    "Write a poem about the sea, the moon and the stars.", "List three prime numbers: 2, 3, 5.",
] * 4
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Byte-level symbols of printable ASCII, space and newline only: every token decodes to valid UTF-8,
# so random-weight models never emit half a multi-byte character.
ASCII_ALPHABET = [chr(c) for c in range(33, 127)] + ["\u0120", "\u010a"]
# Text in other scripts (CJK, emoji, accents, Cyrillic, Greek, Devanagari): with every byte in the alphabet and
# merges of whole and partial characters, a random-weight model's replies hold such characters, control bytes and
# characters split across tokens, as real replies in other scripts do
WORLD_CORPUS = ["北京是中国的首都。东京是日本的首都。", "Café crème brûlée, naïve façade, Ørsted, Škoda.",
                "🙂 🚀 🎉 ☕ 👍🏽 emoji everywhere", "Привет, как дела? Ελληνικά γράμματα.", "नमस्ते दुनिया"] * 4


def make_tokenizer(vocab_size: int = 384, all_bytes: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with a ChatML template; `all_bytes`: all 256 bytes and merges of other scripts
    (WORLD_CORPUS), else printable ASCII only."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet() if all_bytes else ASCII_ALPHABET
    trainer = trainers.BpeTrainer(vocab_size=vocab_size + (48 if all_bytes else 0), special_tokens=SPECIALS,
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(CORPUS + (WORLD_CORPUS if all_bytes else []), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


# Test architectures beyond a model type's defaults: (model_type, config overrides)
ARCHS = {
    "llama": ("llama", {}), "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {"head_dim": 32}),  # explicit head_dim, not hidden / heads
    "phi3": ("phi3", {"pad_token_id": None}),  # its default pad id 32000 lies beyond the tiny vocabulary
    # Llama 3.2's RoPE scaling, its wavelength bands moved inside the tiny context so every band is exercised
    "llama3_rope": ("llama", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                                  "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                  "original_max_position_embeddings": 64}}),
    # a local layer whose window the soft prompt leaves within a chat prompt, then a global one; a score scale not
    # head_dim ** -0.5; tied embeddings, as Gemma 3 ships
    "gemma3": ("gemma3_text", {"head_dim": 32, "sliding_window": 24, "query_pre_attn_scalar": 24,
                               "layer_types": ["sliding_attention", "full_attention"], "tie_word_embeddings": True}),
}


def make_model_dir(path: Path, arch: str = "llama", seed: int = 0, n_layers: int = 2, all_bytes: bool = False) -> Path:
    """A random-weight HF model directory (config, safetensors, tokenizer, chat template); `arch` a key of ARCHS;
    `all_bytes`: the tokenizer of `make_tokenizer(all_bytes=True)`."""
    tokenizer = make_tokenizer(all_bytes=all_bytes)
    model_type, overrides = ARCHS[arch]
    config = AutoConfig.for_model(model_type, **{
        "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": n_layers,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False, "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "initializer_range": 0.2, **overrides})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # norms start at the identity: random, so the tests see them (new architectures only)
        for name, param in model.named_parameters():
            if model_type == "qwen3" and name.endswith(("q_norm.weight", "k_norm.weight")):
                param.uniform_(0.5, 1.5)
            if model_type == "gemma3_text" and name.endswith("norm.weight"):  # it computes x * (1 + w)
                param.uniform_(-0.5, 0.5)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_soft_prompt_dir(path: Path, model_dir: Path, n: int, seed: int = 0, scale: float = 1.0) -> Path:
    """A PEFT prompt-tuning adapter with random virtual-token embeddings."""
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_model = get_peft_model(base, PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n))
    gen = torch.Generator().manual_seed(seed)
    weight = peft_model.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        weight.copy_(torch.randn(weight.shape, generator=gen) * scale)
    peft_model.save_pretrained(path)
    return path


def make_lora_dir(path: Path, model_dir: Path, rank: int = 4, seed: int = 0,
                  targets: str | list[str] = "all-linear") -> Path:
    """A PEFT LoRA adapter with random A and B (PEFT's own init sets B = 0, which would change nothing)."""
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    torch.manual_seed(seed)
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=rank, lora_alpha=2 * rank, target_modules=targets,
                        init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(path)
    return path


def snap_to_q4_1(model_dir: Path, path: Path, group_size: int = 32) -> Path:
    """A copy of `model_dir` whose Linear weights lie on GGUF's Q4_1 grid (per group: 16 levels from min to max),
    as transformers dequantizes a Q4_1 GGUF; the embedding table stays as it is."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            w = module.weight.data.reshape(module.out_features, -1, group_size)
            low, high = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
            step = ((high - low) / 15).half().float()  # GGUF stores d and m in fp16
            low = low.half().float()
            module.weight.data = (((w - low) / step).round().clamp(0, 15) * step + low).flatten(1)
    model.save_pretrained(path)
    PreTrainedTokenizerFast.from_pretrained(model_dir).save_pretrained(path)
    return path


def make_control_vector(path: Path, model_dir: Path, layers: tuple[int, ...], seed: int = 0,
                        scale: float = 1.0) -> Path:
    """A llama.cpp control-vector GGUF with random directions (N(0, scale^2) per value) for `layers`, written with
    gguf's GGUFWriter as llama.cpp's cvector-generator lays it out (int32 layer_count, F32 direction.N)."""
    import gguf
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    gen = torch.Generator().manual_seed(seed)
    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", config.model_type)
    writer.add_int32("controlvector.layer_count", len(layers))
    for layer in layers:
        writer.add_tensor(f"direction.{layer}", (torch.randn(config.hidden_size, generator=gen) * scale).numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_soft_prompt_files(path: Path, embeddings: torch.Tensor, **config) -> Path:
    """A PEFT prompt-tuning directory written by hand, no model needed: adapter_config.json (`config` overrides its
    fields) and adapter_model.safetensors holding `prompt_embeddings`."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    fields = {"peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": embeddings.shape[0],
              "token_dim": embeddings.shape[-1], "base_model_name_or_path": "llama", **config}
    (path / "adapter_config.json").write_text(json.dumps(fields))
    save_file({"prompt_embeddings": embeddings.contiguous()}, path / "adapter_model.safetensors")
    return path
