import sys

from softfold.cli.main import main

sys.exit(main())
