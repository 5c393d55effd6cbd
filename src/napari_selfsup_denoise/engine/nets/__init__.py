"""Networks used by the engine."""
