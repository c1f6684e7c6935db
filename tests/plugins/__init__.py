"""The suite's pytest fixtures, thin plugins over ``testkit`` and ``localcluster``."""
