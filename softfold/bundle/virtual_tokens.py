"""Virtual-token mode (docs/folding.md): the soft prompt as N reserved special tokens.

The bundle's tokenizer gains N special tokens, its chat template (and so the derived prompt format)
starts every prompt with them, and the model maps their ids to the soft prompt's rows. Any runtime
that tokenizes text or takes token ids then runs the soft prompt as N ordinary prefill tokens.
"""
import copy
from dataclasses import dataclass

TOKEN = "<|softfold_virtual_{}|>"


@dataclass(frozen=True)
class VirtualTokens:
    ids: list[int]  # consecutive, starting at ids[0]

    @property
    def start(self) -> int:
        return self.ids[0]

    @property
    def text(self) -> str:
        """What every prompt starts with: the N tokens, in order."""
        return "".join(TOKEN.format(i) for i in range(len(self.ids)))


def add_virtual_tokens(tokenizer, n: int):
    """A copy of `tokenizer` with N new special tokens, its chat template prefixed with them, and their ids."""
    names = [TOKEN.format(i) for i in range(n)]
    bundle_tokenizer = copy.deepcopy(tokenizer)
    bundle_tokenizer.add_special_tokens({"additional_special_tokens": names}, replace_extra_special_tokens=False)
    ids = bundle_tokenizer.convert_tokens_to_ids(names)
    if ids != list(range(ids[0], ids[0] + n)):
        raise RuntimeError(f"virtual tokens got non-consecutive ids {ids[:3]}...: the tokenizer already has some of them")
    virtual = VirtualTokens(ids)
    # Jinja passes literal text through as is: the template now opens with the virtual tokens.
    bundle_tokenizer.chat_template = virtual.text + tokenizer.chat_template
    return bundle_tokenizer, virtual


def read_virtual_tokens(manifest: dict) -> VirtualTokens | None:
    """The bundle's virtual tokens, from its manifest; None for prefix-kv bundles and those without a soft prompt."""
    ids = manifest.get("soft_prompt", {}).get("virtual_token_ids")
    return VirtualTokens(ids) if ids else None
