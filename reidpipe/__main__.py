import sys

from reidpipe.cli import main

sys.exit(main())
