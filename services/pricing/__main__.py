"""`python -m services.pricing`: run the pricing service (settings from TM_* variables)."""

from services.platform import run
from services.pricing.main import PricingConfig, build

run(build, PricingConfig.from_env)
