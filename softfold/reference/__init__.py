"""The PyTorch reference every gate compares with (docs/gate.md): the base model in fp32 eager PyTorch with the
soft prompt, LoRA and steering vectors as their own libraries compute them; batched greedy decoding; refusals
detected from the text."""
