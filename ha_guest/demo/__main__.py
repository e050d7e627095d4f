"""``python -m ha_guest.demo``."""

import sys

from ha_guest.demo import main

sys.exit(main())
