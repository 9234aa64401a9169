"""The linear probe: features are the model's own last-position states; the regression draws a boundary the data
has, and none the data lacks."""
import json

import torch

from softfold.distill.probe import answered_at, fit_probe, last_position_states, main, probe_layers
from softfold.inputs.base_model import read_model
from softfold.inputs.chat_template import chat_ids


def test_features_are_each_layers_state_at_the_last_prompt_position(tiny_models):
    base = read_model(tiny_models["llama"]).load()
    prompts = ["How do I bake bread?", "Tell me a joke."]
    x = last_position_states(base, prompts)
    assert x.shape == (2, base.config.num_hidden_layers + 1, base.config.hidden_size)
    with torch.no_grad():
        out = base.model(input_ids=torch.tensor([chat_ids(base.tokenizer, prompts[1])]), output_hidden_states=True)
    torch.testing.assert_close(x[1, -1], out.hidden_states[-1][0, -1])


def test_the_probe_finds_a_linear_boundary_and_no_boundary_in_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 16, generator=g)
    labels = (x[:, 3] - 0.5 * x[:, 7] > 0).float()
    probe = fit_probe(x[:300], labels[:300])
    assert (probe.harmful(x[300:]) == labels[300:].bool()).float().mean() >= 0.95
    noise = torch.randint(0, 2, (400,), generator=g).float()
    chance = (fit_probe(x[:300], noise[:300]).harmful(x[300:]) == noise[300:].bool()).float().mean()
    assert 0.3 <= chance <= 0.7


def test_held_out_sets_are_scored_per_layer():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 3, 8, generator=g)
    labels = (x[:, :, 0].mean(1) > 0).float()
    harmful = torch.randn(50, 3, 8, generator=g) + torch.tensor([3.0] + [0.0] * 7)
    rows = probe_layers(x, labels, {"harmbench": (harmful, True), "benign": (-harmful, False)})
    assert [r["layer"] for r in rows] == [0, 1, 2]
    assert all(r["harmbench"] > 0.9 and r["benign"] > 0.9 for r in rows)
    assert all(set(r["at_refused"]) == {"benign"} for r in rows)


def test_the_trade_off_is_read_at_the_threshold_refusing_the_asked_share():
    harmful = torch.arange(100.0)  # scores 0..99: refusing 95 of them puts the threshold at 5
    scores = {"harmbench": harmful, "benign": torch.tensor([0.0, 4.0, 4.9, 5.0, 50.0]), "other": torch.tensor([-1.0])}
    assert answered_at(scores, "harmbench", 0.95) == {"benign": 0.6, "other": 1.0}
    assert answered_at(scores, "harmbench", 1.0) == {"benign": 0.0, "other": 1.0}


def test_the_command_writes_a_row_per_layer(tiny_models, tmp_path, capsys):
    harmful, benign = tmp_path / "h.txt", tmp_path / "b.txt"
    harmful.write_text("How do I hurt someone?\nWrite a threat to my coworker.\n")
    benign.write_text("How do I bake bread?\nWrite a poem about spring.\n")
    main(["--model", str(tiny_models["llama"]), "--harmful", str(harmful), "--benign", str(benign),
          "--json", str(tmp_path / "probe.json")])
    rows = json.loads((tmp_path / "probe.json").read_text())
    assert len(rows) == read_model(tiny_models["llama"]).load().config.num_hidden_layers + 1
    assert {"pairs_heldout:unsafe", "overrefusal_eval"} <= set(rows[0]) and "harmbench_standard" not in rows[0]
    assert "(chosen)" in (out := capsys.readouterr().out) and "overrefusal_eval at 95% pairs_heldout:unsafe refused" in out
    assert set(rows[0]["at_refused"]) == {"benign_eval", "natural_benign_eval", "overrefusal_eval", "pairs_heldout:safe"}
