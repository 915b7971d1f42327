# Shared fixtures (the real stack, clients, accounts) for every test folder.
pytest_plugins = ["devstack.testing"]
