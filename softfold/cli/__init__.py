"""The `softfold` command (docs/commands.md): main.py parses and runs it under the exit-code contract; one module per
subcommand (`softfold eval` is evaluate.py); flags.py declares the flags commands share, once."""
