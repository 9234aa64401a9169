"""Calibration: quantized recipes fitted to the soft prompt's behavior (GPTQ and grid weights, prefix K/V,
layer sensitivity), the recipes' arithmetic simulated in PyTorch, and the prompts they calibrate on."""
