"""Administration from the shell: `python -m auth.cli create-admin --email … --password …`."""

import argparse
import asyncio
import getpass
import sys

from common.resources import open_resources

from auth.config import AuthSettings
from auth.main import build_service
from auth.schemas import SignUpRequest


async def create_admin(email: str, password: str, reset: bool) -> None:
    settings = AuthSettings()
    async with open_resources(settings) as resources:
        service = build_service(settings, resources)
        await service.store.ensure_indexes()
        user = await service.ensure_admin(email, password, reset=reset)
    print(f"admin {user.email} ({user.id}) is ready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m auth.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-admin", help="create an admin, or reset one")
    create.add_argument("--email", required=True)
    create.add_argument("--password", help="prompted for when omitted")
    create.add_argument(
        "--reset", action="store_true", help="if the account exists, set its password and level 9"
    )
    args = parser.parse_args(argv)
    password = args.password or getpass.getpass("Password: ")
    try:
        SignUpRequest(email=args.email, password=password)  # same rules as sign-up
    except ValueError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    asyncio.run(create_admin(args.email, password, args.reset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
