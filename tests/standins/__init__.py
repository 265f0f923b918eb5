"""Local stand-ins for what cannot run on these machines, one module or package each, among
them Vault (``vault``, its HTTP API,
driven by hvac unchanged) and Argo CD's application controller (``argocd``, working against
the real Kubernetes API server of scripts/services/kubernetes.sh). Start one in a thread from a
fixture, or as ``python -m tests.standins.<name>``. Kubernetes itself has no stand-in.
"""
