"""`python -m services.reporting`: run the reporting service (settings from TM_* variables)."""

from services.platform import run
from services.reporting.main import build

run(build)
