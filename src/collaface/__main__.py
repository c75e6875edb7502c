"""``python -m collaface`` (also what ``torchrun -m collaface`` runs)."""

import sys

from collaface.cli import main

sys.exit(main())
