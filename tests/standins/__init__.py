"""Local stand-ins for what cannot run on these machines: the GitHub and GitLab APIs
(``git_provider``). Kubernetes, Argo CD and Vault (OpenBao) run for real: tests/kube.py,
tests/argocd.py, tests/openbao.py.
"""
