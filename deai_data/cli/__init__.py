"""The `deai-data` command-line interface."""
