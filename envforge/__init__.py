"""envforge: ephemeral environments on Kubernetes from Backstage-style templates, run by Prefect."""

__version__ = "0.1.0"
