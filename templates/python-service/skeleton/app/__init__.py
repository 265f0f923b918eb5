"""The ${{ values.name }} service (created with envforge)."""

SERVICE_NAME = "${{ values.name }}"
DESCRIPTION = ${{ values.description | tojson }}
DEFAULT_PORT = ${{ values.port }}
