"""What flows in: quotes, the reference copies and the risk service's pre-trade check client."""
