"""`python -m services.notification`: run the notification service (TM_* settings)."""

from services.notification.main import NotificationConfig
from services.notification.main import build
from services.platform import run

run(build, NotificationConfig.from_env)
