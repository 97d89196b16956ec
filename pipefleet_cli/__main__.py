import sys

from pipefleet_cli import main

sys.exit(main())
