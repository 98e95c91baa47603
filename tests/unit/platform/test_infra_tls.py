"""The clients' TLS parameters for PostgreSQL, Redis and NATS (ADR 0018)."""

from __future__ import annotations

import ssl

import pytest
from psycopg.conninfo import conninfo_to_dict

from services.platform.infra_tls import client_context
from services.platform.infra_tls import libpq_params
from services.platform.infra_tls import redis_tls
from services.platform.infra_tls import with_libpq_tls


def test_libpq_verifies_the_server_and_its_name_against_the_ca_and_sends_no_certificate() -> None:
    assert libpq_params("/s/tls/ca.pem") == {
        "sslmode": "verify-full",
        "sslrootcert": "/s/tls/ca.pem",
        "ssl_min_protocol_version": "TLSv1.3",
        "sslcert": "/dev/null/no-client-certificate",
    }
    assert libpq_params(None)["sslrootcert"] == "system"


def test_a_url_gets_the_parameters_quoted_as_libpq_reads_them_back() -> None:
    url = with_libpq_tls("postgresql://u:p@127.0.0.1:5432/db", "/a dir/ca&x.pem")

    params = conninfo_to_dict(url)
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == "/a dir/ca&x.pem"
    with pytest.raises(ValueError, match="already has a query"):
        with_libpq_tls(url, "/ca.pem")


def test_python_clients_check_the_certificate_and_the_host_over_tls_1_3() -> None:
    context = client_context(None)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert redis_tls("/ca.pem") == {
        "ssl": True,
        "ssl_ca_certs": "/ca.pem",
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_min_version": ssl.TLSVersion.TLSv1_3,
    }
