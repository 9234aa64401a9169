"""The comparison table: each row's figures read from the files the pipeline's commands write."""
import json

from tiny import make_control_vector, make_lora_dir, make_soft_prompt_dir

from softfold.distill.comparison import agreement, build, extra_parameters, main

SETS = ("harmbench_standard", "benign_eval", "natural_benign_eval", "overrefusal_eval")


def test_extra_parameters_count_what_each_method_trains(tiny_models, tmp_path):
    """Tiny llama: hidden 64, MLP 128, 2 blocks, K/V 32 wide. A soft prompt: N x 64; a rank-4 LoRA on every
    projection: 4 (in + out) summed over q, k, v, o, gate, up, down = 4 x 1024 per block; a control vector: 64 a layer."""
    model = tiny_models["llama"]
    assert extra_parameters(make_soft_prompt_dir(tmp_path / "p", model, 4)) == 4 * 64
    assert extra_parameters(make_lora_dir(tmp_path / "l", model, rank=4)) == 2 * 4 * (128 + 96 + 96 + 128 + 3 * 192)
    assert extra_parameters(make_control_vector(tmp_path / "v.gguf", model, (1,))) == 64


def _eval(system: str, refused: dict[str, list[bool]], bundle: dict[str, list[bool]] | None = None) -> dict:
    def sets(decisions):
        return {name: {"label": "harmful" if name == SETS[0] else "benign",
                       "correct_rate": (sum(r) if name == SETS[0] else len(r) - sum(r)) / len(r), "refused": r}
                for name, r in decisions.items()}
    return {system: sets(refused), **({"bundle": sets(bundle)} if bundle else {})}


def test_the_table_reads_rates_costs_and_agreement_from_the_commands_files(tiny_models, tmp_path, capsys):
    fp32 = {SETS[0]: [True, True, False, True], SETS[1]: [False, False], SETS[2]: [False, True], SETS[3]: [True, False]}
    quantized = {**fp32, SETS[0]: [True, False, False, True], SETS[3]: [False, False]}
    (tmp_path / "eval.json").write_text(json.dumps(_eval("lora", fp32)))
    (tmp_path / "agree.json").write_text(json.dumps(_eval("lora", fp32, quantized)))
    bench = {"results": [{"name": "no-soft-prompt-pte-8da4w", "artifact_mib": 100.0,
                          "run": {"ttft_ms": 50.0, "decode_tok_s": 200.0}},
                         {"name": "lora-pte-8da4w", "artifact_mib": 96.5, "run": {"ttft_ms": 48.0, "decode_tok_s": 250.0}}]}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    make_lora_dir(tmp_path / "lora", tiny_models["llama"], rank=4)
    spec = {"bench": "bench.json", "rows": [
        {"name": "LoRA r4", "method": "lora", "commands": ["softfold distill --method lora"], "eval": "eval.json",
         "student": "lora", "artifact": "lora", "variant": "lora-pte-8da4w", "agreement": "agree.json",
         "bundle": "bundle"},
        {"name": "steering, untrained", "method": "steering", "eval": "eval.json", "student": "lora"}]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    lora, untrained = build(tmp_path / "spec.json")["rows"]
    assert lora["harmbench_refused"] == 0.75 and lora["template_answered"] == 1.0 and lora["natural_answered"] == 0.5
    assert lora["extra_parameters"] == 8192 and lora["bundle_mib"] == 96.5
    assert lora["first_token_ms"] == 48.0 and lora["decode_tok_s"] == 250.0  # the row's own variant, not the other
    assert lora["agreement_4bit"] == 8 / 10 == agreement(_eval("lora", fp32, quantized), "lora", "bundle")
    assert untrained["extra_parameters"] is None and untrained["agreement_4bit"] is None
    # a result file the spec names but that is not there yet: its figures are not measured, and said so
    spec["rows"][1]["agreement"] = "later.json"
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert build(tmp_path / "spec.json")["missing"] == ["later.json"]
    assert main([str(tmp_path / "spec.json"), "--json", str(tmp_path / "out.json")]) == 0
    table = capsys.readouterr().out
    assert "| LoRA r4 | 75.0% | 100.0% | 50.0% | 50.0% | 8,192 | 96.5 | 48 | 250 | 80.0% |" in table
    assert "| steering, untrained | 75.0% | 100.0% | 50.0% | 50.0% | not measured |" in table
