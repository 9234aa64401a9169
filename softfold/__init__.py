"""softfold: fold trained soft prompts into phone-ready ExecuTorch and ONNX Runtime bundles."""
__version__ = "0.1.0"
