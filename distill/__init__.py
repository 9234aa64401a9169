"""Distillation: the LLM + guard system distilled into a soft prompt (softfold's upstream stage)."""
