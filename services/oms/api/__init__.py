"""The gRPC servicers of the OMS and what only they use (formats, paging, ownership, valuation)."""
