"""What `softfold bench` measures: softfold's bundles and what users would otherwise pick, each an export command
run in a fresh process and an engine that times it."""
from dataclasses import dataclass

PROMPT = ("Write a short, friendly note to my neighbor thanking them for watering my plants while I was away last "
          "week, and invite them over for coffee on Sunday afternoon.")

GUARD_MESSAGE = PROMPT

# The guard's prompt, in Llama Guard's layout (task, categories, conversation, answer format); its
# length, not its wording, is what costs: about 230 tokens around the user's message.
GUARD_PROMPT = """<|begin_of_text|><|start_header_id|>user<|end_header_id|>

Task: Check if there is unsafe content in 'User' messages in conversations according to our safety policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
S1: Violent Crimes.
S2: Non-Violent Crimes.
S3: Sex Crimes.
S4: Child Exploitation.
S5: Defamation.
S6: Specialized Advice.
S7: Privacy.
S8: Intellectual Property.
S9: Indiscriminate Weapons.
S10: Hate.
S11: Self-Harm.
S12: Sexual Content.
S13: Elections.
S14: Code Interpreter Abuse.
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

User: {message}

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST User message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories.<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"""


@dataclass(frozen=True)
class Variant:
    name: str
    engine: str  # softfold.bench_worker engine: runner | genai | naive
    export: tuple[str, ...] = ()  # argv run in a fresh process; {work}, {sp}, {hf}, {py}, {optimum} filled in
    # chat: the user prompt in the model's chat template; bundle: in the bundle's own template (virtual-token
    # bundles start every prompt with their N tokens); guard: the guard's prompt, 1 new token
    prompt: str = "chat"
    needs: str = ""  # an executable the export needs; missing: the variant is skipped
    inputs: tuple[str, ...] = ()  # bench inputs the export needs (adapter, steering); not given: skipped


def variants() -> list[Variant]:
    # {hf} is the bench's own safetensors copy of the model the soft prompt names: the same model, renamed
    plain = ("{py}", "-m", "softfold.cli", "export", "--model", "{hf}", "--force", "--trust-base-model")
    sf = (*plain, "--soft-prompt", "{sp}")
    q8da4w = ("--recipe", "8da4w", "--embedding-bits", "8", "--out", "{out}")
    ex = ("{py}", "-m", "softfold.bench.exports", "--model", "{hf}")
    oe = ("{optimum}", "export", "executorch", "-m", "{hf}", "--task", "text-generation", "--recipe", "xnnpack",
          "--use_custom_sdpa", "--use_custom_kv_cache", "--max_seq_len", "2048")
    builder = ("{py}", "-m", "softfold.bench.builder", "-i", "{hf}", "-e", "cpu", "-c", "{work}/cache")
    return [
        Variant("softfold-pte-fp32", "runner", (*sf, "--out", "{out}")),
        Variant("softfold-pte-8da4w", "runner", (*sf, "--recipe", "8da4w", "--embedding-bits", "8", "--out", "{out}")),
        Variant("softfold-pte-fp32-virtual", "runner", (*sf, "--folding", "virtual-tokens", "--out", "{out}"),
                prompt="bundle"),
        Variant("softfold-pte-8da4w-virtual", "runner", (*sf, "--folding", "virtual-tokens", "--recipe", "8da4w",
                                                          "--embedding-bits", "8", "--out", "{out}"), prompt="bundle"),
        # softfold's own program with nothing added: what the soft prompt's first-token cost is measured against
        Variant("no-soft-prompt-pte-fp32", "runner", (*plain, "--base-only", "--out", "{out}")),
        Variant("no-soft-prompt-pte-8da4w", "runner", (*plain, "--base-only", *q8da4w)),
        Variant("naive-pte-fp32", "naive", (*ex, "naive", "{out}", "--soft-prompt", "{sp}")),
        Variant("naive-pte-8da4w", "naive", (*ex, "naive", "{out}", "--soft-prompt", "{sp}", "--recipe", "8da4w")),
        Variant("optimum-executorch-fp32", "runner", (*oe, "-o", "{out}"), needs="{optimum}"),
        Variant("optimum-executorch-8da4w", "runner", (*oe, "--qlinear", "8da4w", "--qembedding", "8w", "-o", "{out}"),
                needs="{optimum}"),
        Variant("softfold-onnx-fp32", "genai", (*sf, "--target", "onnx", "--out", "{out}")),
        Variant("softfold-onnx-int4", "genai", (*sf, "--target", "onnx", "--recipe", "int4", "--out", "{out}")),
        Variant("ortgenai-builder-fp32", "genai", (*builder, "-p", "fp32", "-o", "{out}")),
        Variant("ortgenai-builder-int4", "genai", (*builder, "-p", "int4", "-o", "{out}")),
        # the paper's baselines, for the comparison: a merged LoRA, steering vectors (no soft prompt)
        Variant("lora-pte-8da4w", "runner", (*plain, "--adapter", "{adapter}", *q8da4w), inputs=("adapter",)),
        Variant("steering-pte-8da4w", "runner", (*plain, "--steering-vector", "{steering}", *q8da4w),
                inputs=("steering",)),
        Variant("guard-llama-guard-3-1b-shape-8da4w", "runner", (*ex, "guard", "{out}", "--recipe", "8da4w"),
                prompt="guard"),
    ]


INPUT_FLAGS = {"adapter": "--adapter", "steering": "--steering-vector"}  # Variant.inputs, as `softfold bench` takes them
