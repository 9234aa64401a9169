import sys

from softfold.cli import main

sys.exit(main())
