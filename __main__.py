"""`python -m teletype`: the same as the `teletype` command."""
import sys

from teletype.cli import main

sys.exit(main())
