"""``python -m devstack install | run | env``."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys

from .config import ConfigError, StackConfig
from .install import InstallError, install
from .stack import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Run the backing servers and every service natively on this machine.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="install/build FerretDB, Redis and RabbitMQ if missing")
    p_run = sub.add_parser("run", help="start everything in the foreground; Ctrl-C stops it all")
    p_run.add_argument(
        "--logs",
        choices=("console", "files"),
        default="console",
        help="console: echo each process's output prefixed with its name (and write the log "
        "files); files: only write <STATE_DIR>/logs/<name>.log",
    )
    p_run.add_argument("--skip-install", action="store_true", help="do not check the programs")
    sub.add_parser(
        "env", help="print, as shell exports, the variables the launcher fills in for services"
    )
    args = parser.parse_args(argv)

    try:
        if args.command == "install":
            config = StackConfig.from_env()
            install(config.repo_root)
            return 0
        if args.command == "env":
            config = StackConfig.from_env()
            for key, value in sorted(config.filled.items()):
                print(f"export {key}={shlex.quote(value)}")
            return 0
        config = StackConfig.from_env(logs=args.logs)
        if not args.skip_install:
            install(
                config.repo_root,
                ferretdb=config.needs_ferretdb,
                redis=config.redis_port is not None,
                rabbitmq=config.rabbitmq_port is not None,
            )
        return asyncio.run(run(config))
    except (ConfigError, InstallError) as e:
        print(f"[devstack] error: {e}", file=sys.stderr, flush=True)
        return 2 if isinstance(e, ConfigError) else 1
    except KeyboardInterrupt:
        return 130
