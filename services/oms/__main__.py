"""`python -m services.oms`: run the oms service (settings from TM_* variables)."""

from services.oms.main import OmsConfig
from services.oms.main import build
from services.platform import run

run(build, OmsConfig.from_env)
