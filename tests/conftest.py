"""Suite-wide pytest configuration: the fixtures of ``tests/plugins``."""

pytest_plugins = [
    "plugins.sigterm",
    "plugins.measured",
    "plugins.builds",
    "plugins.restate",
    "plugins.kube",
    "plugins.real_cluster",
]
