"""The gates (docs/gate.md): a bundle against the PyTorch reference, and a new bundle against a released one."""
