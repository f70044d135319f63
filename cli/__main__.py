import sys

from shopstream.cli import main

sys.exit(main())
