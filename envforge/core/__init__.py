"""Foundations every layer may use: names, paths, redaction helpers, the git and Kubernetes
boundaries, and the view of the settings most modules need (config)."""
