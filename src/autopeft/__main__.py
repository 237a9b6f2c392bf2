import sys

from autopeft.cli import main

sys.exit(main())
