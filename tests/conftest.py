"""Suite-wide pytest configuration: the fixtures of ``tests/plugins``."""

pytest_plugins = [
    "plugins.measured",
    "plugins.builds",
    "plugins.restate",
    "plugins.kube",
    "plugins.real_cluster",
]
