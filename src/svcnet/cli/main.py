"""The `svcnet` command: one entry point, one sub-command per component or tool."""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
from pathlib import Path

from svcnet.cli import agent, dns_explain, proxy, server, up


def _token_create(args: argparse.Namespace) -> int:
    from svcnet.apiserver.auth import TokenFile
    data_dir: Path = args.data_dir or server.default_data_dir()
    if not data_dir.is_dir():
        print(f"svcnet token create: data dir {data_dir} does not exist (start the server "
              "first)", file=sys.stderr)
        return 1
    tokens = TokenFile(data_dir / "tokens.json")
    print(tokens.add(f"system:node:{args.node}", ("system:nodes", "system:authenticated")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="svcnet", description="Kubernetes Service networking "
                                "that really runs")
    sub = p.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("server", help="run the API server")
    server.add_arguments(sp)
    sp.set_defaults(func=server.run)
    tp = sub.add_parser("token", help="manage API tokens")
    tsub = tp.add_subparsers(dest="token_command", required=True)
    tc = tsub.add_parser("create", help="create a token for a node agent")
    tc.add_argument("--node", required=True, help="node name the token acts as")
    tc.add_argument("--data-dir", type=Path, default=None)
    tc.set_defaults(func=_token_create)
    proxy.add_subcommands(sub)
    up.add_subcommands(sub)
    agent.add_subcommands(sub)
    dns_explain.add_subcommands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `kill -USR1 PID` prints every thread's Python stack to stderr (the component's log
    # under `svcnet up`) without stopping it: the way to see where a stuck process is.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
