"""The data softfold ships, as package data: prompt sets (prompt_sets/, described in its README.md) and trained soft
prompts (soft_prompts/); where they are (shipped.py) and how prompt files are read (prompt_files.py)."""
