"""`python -m lstm_trainer.data build|push`; see lstm_trainer.data.cli."""

import sys

from lstm_trainer.data.cli import main

sys.exit(main())
