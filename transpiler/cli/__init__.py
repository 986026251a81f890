"""`sray-gen`: one module per command, each `run(config) -> exit code`, behind main.py."""
