"""What integration test modules share, so that no test module imports from another.

A helper lives in the module of its subject: `waiting` (the one `eventually`), `orders` (the OMS,
groups, traders funded straight at the account service, placing orders), `components` (killing
and restarting the OMS), `edge` and `edge_trading` (users and traders signed in through Envoy),
`edge_calls` (gRPC, gRPC-Web and REST calls and their errors), `risk` (the risk tests' broker),
`pricing`, `stp` (the LP simulators and hedge orders), `triggers`, `rollover` (the broker's day),
`postgres`, `metrics`, `lps` and `hostile` (the hostile-input requests and snapshots). A test
module keeps its tests and its fixtures; fixtures still shared through a test module (imported,
or assigned as `module.fixture`) are the exceptions left.
"""
