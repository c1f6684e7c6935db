"""``python -m localcluster up|down|status|load-images|env`` (``make cluster``, ``make
cluster-down``, ``make images``, ``make env``): the local real cluster as a command."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from localcluster import ingress, local, node
from localcluster.controlplane import KubeStartupError, resolve_bin_dir
from localcluster.pki import CertificateAuthority


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the cluster (or reuse the running one)")
    up.add_argument(
        "--kubeconfig",
        type=Path,
        default=local.DEFAULT_KUBECONFIG,
        help="where to write the admin kubeconfig (default: %(default)s)",
    )
    up.add_argument(
        "--ingress",
        action="store_true",
        help="also start Traefik (Ingress and Gateway API; `make cluster INGRESS=1`), its "
        f"HTTPS certificate from a test CA in {local.STATE_DIR}/ingress-pki",
    )
    sub.add_parser("down", help="stop it and remove everything it left on the host")
    sub.add_parser("status", help="print the running cluster's record (exit 1 if none)")
    sub.add_parser("load-images", help=f"load {local.IMAGES_ARCHIVE} into the running node")
    sub.add_parser(
        "env",
        help="print the shell exports for kubectl and helm on the cluster "
        '(eval "$(python -m localcluster env)")',
    )
    args = parser.parse_args(argv)

    if args.command == "up":
        info = local.up(args.kubeconfig)
        print(
            f"cluster up: {info.server}, node {node.NODE_NAME} Ready; "
            f"timings {json.dumps(info.timings)}",
            file=sys.stderr,
        )
        if args.ingress:
            ca = CertificateAuthority(local.STATE_DIR / "ingress-pki")
            cert = ca.issue("gateway", common_name="*.example.local",
                            dns_names=("*.example.local",), server=True)  # fmt: skip
            controller = ingress.deploy(args.kubeconfig, cert)
            print(
                f"Traefik {controller.version}: {controller.http} and {controller.https} "
                f"(IngressClass {ingress.INGRESS_CLASS}, Gateway {ingress.NAMESPACE}/"
                f"{ingress.GATEWAY}; test CA {ca.cert})",
                file=sys.stderr,
            )
        print(args.kubeconfig)
    elif args.command == "down":
        found = local.down()
        print("cluster down" + (f"; removed: {', '.join(found)}" if found else ""), file=sys.stderr)
    elif args.command == "status":
        running = local.running()
        if running is None:
            print("no local cluster is running", file=sys.stderr)
            return 1
        print(json.dumps(running.__dict__, indent=2))
    elif args.command == "load-images":
        if local.running() is None:
            print("no local cluster is running: images load at `make cluster`", file=sys.stderr)
            return 0
        refs = local.load_images()
        print(f"node images: {len(refs)}", file=sys.stderr)
    elif args.command == "env":
        try:
            bin_dir = resolve_bin_dir()
        except KubeStartupError as error:
            print(error, file=sys.stderr)
            return 1
        print(f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"')
        print(f"export KUBECONFIG={shlex.quote(str(local.DEFAULT_KUBECONFIG))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
