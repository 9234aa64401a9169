"""What the commands read, each checked before any heavy work (docs/inputs.md): the base model (a Hugging Face
directory, a GGUF file or a named model), its chat template, the soft prompt, LoRA adapters and control vectors."""
