"""`python -m services.risk`: run the risk service (settings from TM_* variables)."""

from services.platform import run
from services.risk.main import RiskConfig
from services.risk.main import build

run(build, RiskConfig.from_env)
