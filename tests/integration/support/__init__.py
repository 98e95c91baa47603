"""What integration test modules share: builders of traders and brokers, order placing,
stopping and restarting components, and the one way of waiting (`waiting.eventually`).

Test modules import from here, never from one another: a helper lives in the module of its
subject (`orders`, ...), and a test module keeps only its tests and its fixtures.
"""
