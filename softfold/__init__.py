"""softfold: fold trained soft prompts into phone-ready ExecuTorch and ONNX Runtime bundles.

`softfold.fold(...)`, `softfold.Bundle` and `softfold.Manifest` are the Python API (softfold/api.py); they load on
first use, so that `import softfold` stays light and the CLI can set its thread count before torch loads.
"""
from softfold.errors import ExitCode, UserError

__version__ = "0.1.0"
__all__ = ["Bundle", "ExitCode", "Manifest", "UserError", "fold"]


def __getattr__(name: str):
    if name in ("Bundle", "Manifest", "fold"):
        from softfold import api  # PEP 562: the API (and torch) load when first asked for

        return getattr(api, name)
    raise AttributeError(f"module 'softfold' has no attribute {name!r}")
