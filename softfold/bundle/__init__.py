"""A bundle on disk (docs/bundle.md): its manifest (typed), checksums and verification, the tokenizer files and
prompt format a phone reads, the virtual tokens, and the model card."""
