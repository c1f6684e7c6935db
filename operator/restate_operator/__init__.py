"""A small kopf operator that registers Kubernetes Services with a Restate server.

See `handlers.py` for the design, `reconcile.py` for how rollouts force rediscovery.
"""
