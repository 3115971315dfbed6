import sys

from dlearn.cli import main

sys.exit(main())
