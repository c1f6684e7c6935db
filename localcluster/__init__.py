"""A real Kubernetes cluster on this machine, without Docker: the control plane
(``controlplane``), its certificates (``pki``), kubeconfigs (``kubeconfig``), one real node
(``node``) and the host state it changes (``hoststate``), put together by ``local`` (the
command ``python -m localcluster`` and the end-to-end fixture)."""
