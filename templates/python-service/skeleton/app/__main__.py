"""`python -m app` starts the service."""

from app.server import main

main()
