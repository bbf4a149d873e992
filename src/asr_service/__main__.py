import sys

from asr_service.cli import main

sys.exit(main())
