"""Suite-wide pytest configuration."""

pytest_plugins = ["testkit.restate", "testkit.kube", "testkit.cluster.fixtures"]
