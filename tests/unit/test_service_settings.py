"""Every service's own settings fail the way the platform's do (issue #20): `run` reads them
with the platform's before anything connects, and a bad one exits with code 2 and one line,
"error: invalid settings: ...", naming each bad variable, the platform's and the service's."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import pytest

from services.account.main import AccountConfig
from services.account.main import build as account
from services.notification.main import NotificationConfig
from services.notification.main import build as notification
from services.oms.main import OmsConfig
from services.oms.main import build as oms
from services.platform import ServiceSpec
from services.platform import run
from services.pricing.main import PricingConfig
from services.pricing.main import build as pricing
from services.pricing.streams import StreamsConfig
from services.pricing.streams import build as streams
from services.risk.main import RiskConfig
from services.risk.main import build as risk

PLATFORM = {
    "TM_SERVICE": "oms",
    "TM_GRPC_ADDR": "127.0.0.1:1",
    "TM_METRICS_ADDR": "127.0.0.1:2",
    "TM_VAULT_ADDR": "http://127.0.0.1:3",
    "TM_VAULT_TOKEN": "unused-here",
    "TM_DATABASE_HOST": "127.0.0.1",
    "TM_DATABASE_PORT": "17000",
    "TM_DATABASE_NAME": "tradingmesh",
    "TM_REDIS_HOST": "127.0.0.1",
    "TM_REDIS_PORT": "17001",
    "TM_NATS_URL": "nats://127.0.0.1:17002",
}
# Each service that reads TM_* variables of its own: a bad environment (beside good platform
# settings) and the problems its one line names.
Build = Callable[..., ServiceSpec]
ServiceSettings = Callable[[Mapping[str, str]], Any]
CASES: list[tuple[str, Build, ServiceSettings, dict[str, str], list[str]]] = [
    ("account", account, AccountConfig.from_env, {}, ["TM_RISK_ADDR is missing"]),
    (
        "account",
        account,
        AccountConfig.from_env,
        {"TM_RISK_ADDR": "risk"},
        ["TM_RISK_ADDR must be host:port, e.g. 127.0.0.1:17120, got 'risk'"],
    ),
    (
        "oms",
        oms,
        OmsConfig.from_env,
        {"TM_OMS_MAX_QUOTE_AGE_MS": "0", "TM_RISK_ADDR": "127.0.0.1:1"},
        ["TM_OMS_MAX_QUOTE_AGE_MS must be a whole number of at least 1, got '0'"],
    ),
    (
        "risk",
        risk,
        RiskConfig.from_env,
        {"TM_RISK_MARGIN_PASS_MS": "soon", "TM_RISK_REPORTING_CURRENCY": "usd"},
        [
            "TM_OMS_ADDR is missing",
            "TM_RISK_MARGIN_PASS_MS must be a whole number of at least 1, got 'soon'",
            "TM_RISK_REPORTING_CURRENCY must be a currency code of three capital letters,"
            " e.g. USD, got 'usd'",
        ],
    ),
    (
        "pricing",
        pricing,
        PricingConfig.from_env,
        {
            "TM_PRICING_LP_SILENCE_S": "0",
            "TM_PRICING_MAX_QUOTE_AGE_MS": "2s",
            "TM_PRICING_TICK_RETENTION_DAYS": "0",
        },
        [
            "TM_PRICING_MAX_QUOTE_AGE_MS must be a whole number, got '2s'",
            "TM_PRICING_LP_SILENCE_S must be a number above 0 and at most 3600, got '0'",
            "TM_PRICING_TICK_RETENTION_DAYS must be a whole number of days from 1 to 3650, got '0'",
        ],
    ),
    (
        "pricing",
        streams,
        StreamsConfig.from_env,
        {"TM_PRICING_STREAM_REFRESH_S": "0.1"},
        ["TM_PRICING_STREAM_REFRESH_S must be a number from 0.5 to 3600, got '0.1'"],
    ),
    (
        "notification",
        notification,
        NotificationConfig.from_env,
        {"TM_NOTIFICATION_EMAIL_WORKERS": "64"},
        ["TM_NOTIFICATION_EMAIL_WORKERS must be a whole number from 1 to 32, got '64'"],
    ),
]


@pytest.mark.parametrize(
    ("service", "build", "settings", "bad", "problems"),
    CASES,
    ids=[f"{case[0]}-{'-'.join(case[3]) or 'missing'}" for case in CASES],
)
def test_a_bad_service_setting_exits_2_with_one_line_naming_it(
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    service: str,
    build: Build,
    settings: ServiceSettings,
    bad: dict[str, str],
    problems: list[str],
) -> None:
    for name, value in {**PLATFORM, "TM_SERVICE": service, **bad}.items():
        environment.setenv(name, value)

    with pytest.raises(SystemExit) as exited:
        run(build, settings)

    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == "error: invalid settings: " + "; ".join(problems)


def test_bad_platform_and_service_settings_are_named_in_one_line(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {**PLATFORM, "TM_SERVICE": "risk"}.items():
        environment.setenv(name, value)
    environment.delenv("TM_GRPC_ADDR")

    with pytest.raises(SystemExit) as exited:
        run(risk, RiskConfig.from_env)

    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == "error: invalid settings: TM_GRPC_ADDR is missing; TM_OMS_ADDR is missing"
