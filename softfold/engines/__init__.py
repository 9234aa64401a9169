"""The phone runtimes, driven from Python (docs/runtimes.md): ExecuTorch's TextLLMRunner and onnxruntime-genai for
greedy replies, their programs' logits for the gate, and chat with a bundle."""
