"""Defaults of the market's terms and of the key agent, importable without web3 (the CLI reads them at start-up)."""

DEFAULT_DELIVERY_WINDOW = 24 * 3600
DEFAULT_CHALLENGE_PERIOD = 3 * 24 * 3600
DEFAULT_CONFIRMATIONS = 2
