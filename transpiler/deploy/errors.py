"""The one error of deploy and destroy: what went wrong, and what to do next."""

from __future__ import annotations


class DeployError(Exception):
    """A deploy or destroy step cannot go on; the message says why and what to do."""
