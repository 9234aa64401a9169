"""Calibration: the prompt sets a bundle is measured (and, for quantized recipes, calibrated) on."""
