"""The bench's comparison artifact softfold export does not make: the naive program (token_embedding and
text_decoder methods, the soft prompt's embeddings beside it, prepended at every request)."""
from safetensors.torch import load_file

from softfold.bench.exports import main


def test_the_naive_program_holds_both_methods_and_the_soft_prompt(tiny_models, soft_prompts, tmp_path):
    main(["naive", str(tmp_path / "naive"), "--model", str(tiny_models["llama"]),
          "--soft-prompt", str(soft_prompts[("llama", 16)])])
    out = tmp_path / "naive"
    assert (out / "model.pte").stat().st_size > 0 and (out / "tokenizer.json").is_file()
    assert load_file(out / "soft_prompt.safetensors")["prompt_embeddings"].shape == (16, 64)
