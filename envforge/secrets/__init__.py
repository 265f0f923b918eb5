"""Secrets and variables of environments: scoped variables, Vault reads, redaction, delivery.

    references   vault:<mount>/<path>#<key>[@<version>] references
    variables    scopes (built-in < template < project < type < environment), ${{ vars.X }}
    vault        reading KV v1/v2 with hvac; the one place hvac errors are mapped
    redaction    masking fetched values in log records and error messages
    delivery     the environment's Secret through the Kubernetes API (create/replace/undo)
    manifests    Git-bound ConfigMap and ExternalSecret, never holding a value
    environment  plan -> fetch -> write manifests -> deliver; fetch_and_deliver() for flows
    actions      the vault:secrets and kubernetes:secret template steps

Submodules are imported explicitly (this package imports nothing, so parsing a reference does
not load hvac or the kubernetes client).
"""
