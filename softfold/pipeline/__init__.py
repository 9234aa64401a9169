"""`softfold export`'s pipeline (docs/folding.md): the inputs read and checked once, then folded, lowered, gated
and written as one bundle."""
