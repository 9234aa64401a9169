"""The README.md each bundle carries: a model card a model hub takes as-is (YAML front matter), for the app
developer who receives the bundle."""
import yaml

LIBRARY = {"executorch": "executorch", "onnx": "onnxruntime-genai", "ort": "onnxruntime"}

ANDROID = {
    "executorch": """## Android (ExecuTorch `LlmModule`, `org.pytorch:executorch-android:1.5.1`)
softfold's demo app (`android_demo/` in the softfold repository) runs this bundle as it is: push the
whole directory (the app checks every file against `manifest.json` before loading) to its files dir:
`adb push . /sdcard/Android/data/ai.softfold.demo/files/bundle/`. In your own app:
```kotlin
val module = LlmModule("$dir/model.pte", "$dir/tokenizer.json", 0.0f)
module.load()                                  // throws if the program does not load
module.resetContext()                          // each conversation from position 0; the soft prompt stays
module.generate(prompt, contextLength, callback, false)  // seqLen caps prompt + reply; echo off
```
`prompt` is the whole conversation in the prompt format below. `onResult` gets decoded text, not
tokens: end the reply yourself where a stop string appears in it (it may span pieces), calling
`module.stop()` on every later piece too (`stop()` from the first piece is undone when decoding starts).""",
    "onnx": """## Android (ONNX Runtime GenAI 0.18.0, on `onnxruntime-android:1.32.0`)
The ORT GenAI AAR is not on Maven Central: put the release's `onnxruntime-genai-android-0.18.0.aar`
into `app/libs/` (`implementation(files("libs/onnxruntime-genai-android-0.18.0.aar"))` plus
`implementation("com.microsoft.onnxruntime:onnxruntime-android:1.32.0")`, the ONNX Runtime the parity
gate ran). softfold's demo app (`android_demo/` in the softfold repository) runs this bundle as it is:
push the whole directory (the app checks every file against `manifest.json` before loading) to its
files dir: `adb push . /sdcard/Android/data/ai.softfold.demo/files/bundle/`. In your own app:
```kotlin
val model = Model(dir)                       // reads genai_config.json, model.onnx(.data), tokenizer files
val tokenizer = Tokenizer(model)
tokenizer.encode(prompt).use { ids ->        // prompt formatted with the prompt format below
    GeneratorParams(model).use { params ->
        params.setSearchOption("max_length", minOf(contextLength, ids.getSequence(0).size + maxNewTokens).toDouble())
        Generator(model, params).use { generator ->
            generator.appendTokenSequences(ids)
            tokenizer.createStream().use { stream ->
                while (!generator.isDone) {
                    generator.generateNextToken()
                    val id = generator.getLastTokenInSequence(0)
                    if (id in stopIds) break
                    show(stream.decode(id))
                }
            }
        }
    }
}
```""",
    "ort": """## Android (ONNX Runtime Mobile)
`model.ort` loads in an `OrtSession` of onnxruntime-android (full build, or a minimal build made
with `required_operators.config`). Inputs: `input_ids`, `attention_mask` (ones over the conversation's
tokens so far), `past_key_values.{i}.key/value`: fixed buffers [batch, kv_heads, N + max_context,
head_dim], zeros when a conversation starts; outputs `logits` and `present.{i}.key/value`, the same
buffers updated, to feed back as the next call's past (the first call writes the soft prompt's
keys/values into their first N slots). `genai_config.json` describes it for ORT GenAI as well.""",
}


FOLDING = {
    "prefix-kv": """folded in as constant attention keys/values (prefix-kv). It is always active:
you do not feed it, it costs no prefill, and resetting the conversation keeps it (a conversation
starts at position 0, where the model puts the soft prompt's keys/values into the first slots of its
KV cache). Feed the user's chat-formatted prompt exactly as you would to the
base model.""",
    "virtual-tokens": """as special tokens `<|softfold_virtual_0|>` ... added to
`tokenizer.json` (virtual-tokens). Every prompt must start with them: the chat template and the
`prompt_format` preamble below already do, so use them and do not strip special tokens when
tokenizing. They cost that many prefill tokens per conversation and count against the context.""",
}


def _calibrated(sp: dict) -> str:
    if "prefix_kv" not in sp:
        return ""
    if sp["prefix_kv"].get("rejected_held_out_kl") is not None:
        return ("\n\nA calibration of its keys/values to this bundle's quantized weights (`softfold calibrate-prefix`) "
                "did not bring the quantized model closer to fp32, so they are the folded ones.")
    return ("\n\nIts keys/values were calibrated to this bundle's quantized weights (`softfold calibrate-prefix`): "
            "they are fitted so the quantized model follows the fp32 soft prompt's replies more closely; they "
            "stay fp32 and nothing changes for the app.")


def front_matter(manifest: dict) -> str:
    """The model card's metadata: base model and its license (as the model's files state them; "unknown" when
    they do not), library, tags, pipeline."""
    m = manifest["model"]
    data = {**({"base_model": m["base_model"]} if m.get("base_model") else {}), "license": m.get("license", "unknown"),
            "library_name": LIBRARY[manifest["backend"]], "pipeline_tag": "text-generation",
            "tags": ["softfold", *(["soft-prompt"] if "soft_prompt" in manifest else []),
                     *(["lora"] if "adapter" in manifest else []),
                     *(["steering-vector"] if "steering" in manifest else []),
                     *(["safety"] if _added(manifest) else []), "on-device", "android",
                     manifest["backend"], manifest["recipe"], m["architecture"]]}
    return f"---\n{yaml.safe_dump(data, sort_keys=False)}---\n"


def _parity_summary(manifest: dict) -> str:
    p = manifest["parity"]
    rows = [("passed", p["passed"]), ("prompts", p["prompts"]), ("mean KL (nats)", f"{p['mean_kl']:.3g}"),
            ("top-1 agreement", f"{p['top1']:.4f}"), ("greedy replies equal", f"{p['exact_match']:.2f}")]
    if p.get("refusal_agreement") is not None:
        rows.append(("refusal decisions equal (phone engine)", f"{p['refusal_agreement']:.2f}"))
    return "\n".join(["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def _safety_summary(sp: dict) -> str:
    if not sp.get("safety_eval"):
        return ""
    rows = [f"| {name} | {s['label']} | {s['prompts']} | {s['correct_rate']:.1%} "
            f"{'refused' if s['label'] == 'harmful' else 'answered'} |" for name, s in sp["safety_eval"].items()]
    return "\n".join(["", "## Safety evaluation (the soft prompt's, fp32 PyTorch)", "",
                      "From the soft prompt's `eval.json` (`softfold eval`); the 4-bit recipes are gated to agree "
                      "with it (parity above).", "", "| prompt set | label | prompts | result |", "|---|---|---|---|",
                      *rows, ""])


def _carried(manifest: dict) -> str:
    """What the bundle carries beyond the base model: its soft prompt, its merged LoRA, its steering vectors."""
    sp, lora, steering, parts = manifest.get("soft_prompt"), manifest.get("adapter"), manifest.get("steering"), []
    if sp:
        parts.append(f"This model carries a learned soft prompt of {sp['num_virtual_tokens']} virtual tokens (sha256\n"
                     f"`{sp['sha256'][:16]}...`), {FOLDING[sp['folding']]}{_calibrated(sp)}")
    if lora:
        targets = sorted({t.rsplit(".", 1)[-1] for t in lora["target_modules"]})  # PEFT may list every module
        parts.append(f"Its weights hold a LoRA adapter (rank {lora['rank']}, alpha {lora['alpha']:g}, on "
                     f"{', '.join(targets)}), merged into them (W + alpha / rank B A) before export: nothing about it "
                     "changes for the app.")
    if steering:
        parts.append(f"It adds steering vectors (a llama.cpp control vector, sha256 `{steering['sha256'][:16]}...`) to "
                     f"the residual stream after blocks {', '.join(map(str, steering['layers']))}, as constants of the "
                     "graph, at every position: nothing about them changes for the app.")
    if not parts:
        parts.append("This is the base model alone (`softfold export --base-only`): no soft prompt, LoRA or steering "
                     "vectors, so it refuses only what the base model refuses. Not a safety model: a cost or A/B "
                     "anchor.")
    return "\n\n".join(parts)


def _added(manifest: dict) -> list[str]:
    return [name for key, name in (("soft_prompt", "soft prompt"), ("adapter", "LoRA (unmerged, as PEFT computes it)"),
                                   ("steering", "steering vectors (added after their blocks by forward hooks)"))
            if key in manifest]


def _reference(manifest: dict) -> str:
    return " + ".join(["Base model", *_added(manifest)])


def app_readme(manifest: dict) -> str:
    sp, m = manifest.get("soft_prompt", {}), manifest["model"]
    parity = "passed" if manifest["parity"]["passed"] else "FAILED"
    base = f"`{m['base_model']}`" if m.get("base_model") else m["architecture"]
    return f"""{front_matter(manifest)}
# softfold bundle: {base} ({manifest['backend']}, {manifest['recipe']})

{_carried(manifest)}

## Parity with the PyTorch reference: {parity}
{_reference(manifest)} in fp32 eager PyTorch against this bundle's runtime (`parity.md` per prompt):

{_parity_summary(manifest)}
{_safety_summary(sp)}
{ANDROID[manifest['backend']]}

## Prompt format
Without Jinja: `manifest.json` -> `prompt_format` holds the chat template as strings, checked
against it at export. Prompt = `preamble` + for each turn (`user_prefix` + text + `user_suffix`,
or `assistant_prefix` + text + `assistant_suffix`) + `generation_prefix`. With Jinja: the chat
template in `tokenizer_config.json` (also `chat_template.jinja`), `add_generation_prompt=True`. Generation stops at token ids {m['stop_ids']}
(text {m['stop_strings']}). ExecuTorch 1.5's runner does not stop when the *first* reply token is
end-of-turn: stop in your token callback when a stop string arrives.
Context: {m['context_length']} tokens.

## Files
`manifest.json` lists every file with its size and sha256; `softfold verify DIR` re-checks them.
"""
