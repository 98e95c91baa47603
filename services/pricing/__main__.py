"""`python -m services.pricing`: run the pricing service (settings from TM_* variables)."""

from services.platform import run
from services.pricing.main import PricingConfig
from services.pricing.main import build

run(build, PricingConfig.from_env)
