import sys

from .processor import main

sys.exit(main())
