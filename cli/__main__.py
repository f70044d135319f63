import sys

from shopstream import main

sys.exit(main())
