"""One module per server the stack runs; `base` holds what they share."""
