import sys

from regnet.cli import main

sys.exit(main())
