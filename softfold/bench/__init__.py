"""`softfold bench`: softfold's bundles timed against what users would otherwise pick, each variant exported and
timed in fresh processes of its own (benchmarks/README.md)."""
