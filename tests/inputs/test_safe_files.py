"""Input files read safely: pickles refused unread, JSON that must be an object, safetensors checked whole."""
import pytest
import torch
from safetensors.torch import save_file

from softfold.errors import UserError
from softfold.inputs.safe_files import check_safetensors, read_json_object, refuse_pickle


def test_a_pickle_is_refused_by_its_name_alone(tmp_path):
    refuse_pickle([tmp_path / "model.safetensors", tmp_path / "notes.txt"], "model")  # nothing to refuse
    with pytest.raises(UserError, match=r"holds pickle checkpoint\(s\) \['pytorch_model.bin'\]; softfold never"):
        refuse_pickle([tmp_path / "pytorch_model.bin"], "model directory")


def test_json_must_be_an_object(tmp_path):
    good, bad, listed = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    good.write_text('{"r": 8}')
    bad.write_text("{not json")
    listed.write_text("[1, 2]")
    assert read_json_object(good, "adapter config") == {"r": 8}
    with pytest.raises(UserError, match=r"adapter config .*b.json is not valid JSON"):
        read_json_object(bad, "adapter config")
    with pytest.raises(UserError, match="holds a JSON list, expected an object"):
        read_json_object(listed, "adapter config")


def test_a_truncated_safetensors_file_is_named(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(4, 4), "b": torch.ones(2)}, path)
    assert sorted(check_safetensors(path, "weights")) == ["a", "b"]
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(UserError, match="is not a readable safetensors file .* it may be truncated"):
        check_safetensors(path, "weights")
