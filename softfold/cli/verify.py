"""`softfold verify`: re-check a bundle's checksums and manifest schema."""
import argparse
import sys
from pathlib import Path

from softfold.bundle.integrity import read_manifest, verify


def add_to(sub) -> None:
    p = sub.add_parser("verify", help="re-check a bundle's checksums and manifest schema",
                       description="Exits 1 when a file is missing, extra or changed, or the manifest breaks its "
                                   "schema; prints the parity verdict recorded at export.")
    p.add_argument("bundle")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    problems = verify(Path(args.bundle))
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    parity = read_manifest(Path(args.bundle)).get("parity", {})
    state = "intact" if not problems else f"DAMAGED ({len(problems)} problem(s))"
    print(f"{args.bundle}: {state}; parity at export: {'passed' if parity.get('passed') else 'FAILED'}")
    return 0 if not problems else 1
