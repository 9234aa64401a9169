"""The model card a bundle's README opens with: metadata from the inputs' own files, parsed as the hub parses it."""


from softfold.inputs.named_models import default_model_path
from softfold.inputs.provenance import DEFAULT_MODEL_ID, BaseModelFacts, base_model_facts


def test_embedded_gguf_names_its_hub_model_and_license():
    assert base_model_facts(default_model_path()) == BaseModelFacts(DEFAULT_MODEL_ID, "apache-2.0")


def test_model_directory_facts_come_from_its_card(tmp_path):
    assert base_model_facts(tmp_path) == BaseModelFacts(None, None)
    (tmp_path / "README.md").write_text("---\nlicense: mit\nbase_model: org/tiny-llm\n---\n# Tiny\n")
    assert base_model_facts(tmp_path) == BaseModelFacts("org/tiny-llm", "mit")
    (tmp_path / "README.md").write_text("---\nlicense: [unclosed\n---\n")
    assert base_model_facts(tmp_path) == BaseModelFacts(None, None)  # a broken card is no card, not an error




