"""Local stand-ins for services these machines cannot run (Vault, the Kubernetes API server).

Each speaks the real HTTP API closely enough that hvac and the official kubernetes client drive
it unchanged; start one in a thread from a fixture, or as ``python -m tests.standins.<name>``.
"""
