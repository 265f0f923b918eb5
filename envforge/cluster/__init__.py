"""Cluster feedback: what Argo CD and the Kubernetes API say about an environment.

    client    the one boundary to the kubernetes client: reads as plain dicts, errors mapped
    status    Argo CD Application sync/health/operation, Deployment rollouts, pod states
    diagnose  failing pods' recent events and log tails, redacted, as a summary
    wait      wait until Synced + Healthy + rolled out, bounded in time and polls
    logs      pod logs by component, with a bounded follow
    shell     an interactive shell in a running container (exec API, raw terminal, resize)
    actions   the argocd:wait template step
    cli       `envforge env status|logs|shell` (add_env_commands)

Submodules are imported explicitly, so importing this package loads no kubernetes client.
"""
