"""The base model: located and its files, config and chat template checked in seconds (`read_model`), loaded once
(`ModelSource.load`); its stop and start ids."""
import json
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file
from tiny import make_tokenizer

from softfold.errors import UserError
from softfold.inputs.base_model import BaseModel, bos_id, eos_ids, read_model


def test_a_model_that_is_not_one_is_refused_before_anything_loads(tmp_path):
    with pytest.raises(UserError, match="model not found"):
        read_model(tmp_path / "absent")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04")
    with pytest.raises(UserError, match="is named .gguf but is not a GGUF file"):
        read_model(fake)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(UserError, match="never unpickles"):
        read_model(tmp_path / "m")
    save_file({"w": torch.zeros(2)}, tmp_path / "m" / "model.safetensors")
    with pytest.raises(UserError, match="has no config.json"):
        read_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "mistral"}))
    with pytest.raises(UserError, match="architecture 'mistral' is not supported yet"):
        read_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(UserError, match="has no tokenizer"):
        read_model(tmp_path / "m")


def test_a_model_directory_reads_as_its_source(tiny_models):
    source = read_model(tiny_models["llama"])
    assert (source.path, source.location, source.gguf_file, source.chat_template) == (
        tiny_models["llama"], tiny_models["llama"], None, None)
    assert source.config.model_type == "llama" and not source.gguf
    base = source.load()
    assert base.config.hidden_size == 64 and base.tokenizer.chat_template


def test_stop_ids_hold_the_token_that_ends_a_reply():
    tokenizer = make_tokenizer()
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[0]), config=SimpleNamespace(bos_token_id=7))
    base = BaseModel(model, tokenizer)
    assert eos_ids(base) == [0, end]  # the generation config's, then ChatML's end of turn (the tokenizer's EOS)
    assert bos_id(base) == tokenizer.bos_token_id
    tokenizer.bos_token = None
    assert bos_id(base) == 7  # the config's when the tokenizer has none
