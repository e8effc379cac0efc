"""teletype: an operator console and toolkit for language models that operate a POSIX shell.

The repository's root is this import package: pyproject.toml maps `teletype` to it (package-dir), so
engine/, console/ and train/ install as teletype.engine, teletype.console and teletype.train, and the
bundled scenarios/ as its package data. engine is headless; console and train build on it; teletype.cli
sits above all three (the import-linter contracts in pyproject.toml)."""
