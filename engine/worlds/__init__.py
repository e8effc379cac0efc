"""Scenarios and worlds: the TOML scenario format (scenario.py) and the world generators."""
