"""`python -m services.account`: run the account service (settings from TM_* variables)."""

from services.account.main import AccountConfig
from services.account.main import build
from services.platform import run

run(build, AccountConfig.from_env)
