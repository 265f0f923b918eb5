"""Benchmark: the costs secrets add to a run, each measured side by side in one process.

    .venv/bin/python bench/secrets_redaction.py --reps 5 --write-docs

1. Log redaction: formatting N log records with the redacting record factory installed and
   200 registered values, against the plain factory (same records, same handler).
2. Vault reads: fetching 50 secret references spread over 10 paths through a real OpenBao dev server
   (HTTP on 127.0.0.1) with envforge's one-read-per-path reader, against one read per reference.
3. Variable resolution: resolving 1,000 variables (chains of ${{ vars.X }} references, 100
   secret references) for one environment.

Every loop is bounded; OpenBao listens on 127.0.0.1 and stops at the end.
"""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hvac  # noqa: E402

from bench.common import median_seconds, write_docs_section  # noqa: E402
from envforge.secrets import redaction  # noqa: E402
from envforge.secrets.redaction import SecretRedactor  # noqa: E402
from envforge.secrets.references import parse_reference  # noqa: E402
from envforge.secrets.variables import VariableSources, resolve_variables  # noqa: E402
from envforge.secrets.vault import VaultSecretReader  # noqa: E402
from tests.openbao import start_openbao  # noqa: E402


def log_records(logger: logging.Logger, count: int) -> None:
    """Emit ``count`` log records that carry no secret."""
    for i in range(count):
        logger.info("step %s finished: %d file(s) written to %s", "publish", i,
                    "environments/pr-42/manifests")


def bench_redaction(reps: int, records: int) -> tuple[float, float]:
    """Median seconds to log records without (A) and with (B) the redacting factory."""
    logger = logging.getLogger("bench.secrets")
    logger.propagate = False
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    plain_factory = logging.getLogRecordFactory()
    plain = median_seconds(lambda: log_records(logger, records), reps)
    redaction.install(logger_names=())
    redaction.default_redactor().register_all(f"secret-value-{i:04d}-xyz" for i in range(200))
    masked = median_seconds(lambda: log_records(logger, records), reps)
    assert "secret-value" not in redaction.scrub("secret-value-0007-xyz")
    logging.setLogRecordFactory(plain_factory)
    redaction.default_redactor().forget_all()
    return plain, masked


def bench_vault(reps: int) -> tuple[float, float, int, int]:
    """Median seconds and reads: one read per Vault path (A) vs per reference (B)."""
    state = Path(tempfile.mkdtemp(prefix="envforge-bench-openbao-"))
    bao = start_openbao(state)  # the real OpenBao (scripts/services/openbao.sh)
    try:
        for p in range(10):
            bao.put_secret(f"bench/app{p}", {f"k{k}": f"v{p}-{k}" for k in range(5)})
        refs = [parse_reference(f"vault:kv/bench/app{p}#k{k}") for p in range(10)
                for k in range(5)]
        def once_per_path() -> int:
            reader = VaultSecretReader(hvac.Client(url=bao.address, token=bao.root_token),
                                       bao.address, redactor=SecretRedactor())
            reader.read_all(refs)
            return reader.reads

        def once_per_reference() -> int:
            reader = VaultSecretReader(hvac.Client(url=bao.address, token=bao.root_token),
                                       bao.address, redactor=SecretRedactor())
            for ref in refs:
                reader.read(ref)
                reader.forget()  # what a reader without the per-path cache would do
            return reader.reads

        cached = median_seconds(once_per_path, reps)
        naive = median_seconds(once_per_reference, reps)
        return cached, naive, once_per_path(), once_per_reference()
    finally:
        bao.stop()
        shutil.rmtree(state, ignore_errors=True)


def bench_variables(reps: int) -> float:
    """Median seconds to resolve 1,000 chained variables."""
    template: dict[str, str] = {}
    for i in range(1000):
        if i % 10 == 0:
            template[f"V{i}"] = f"vault:kv/app/p{i}#key"
        else:
            template[f"V{i}"] = f"x-${{{{ vars.V{i - 1} }}}}"
    sources = VariableSources(template=template, environment_name="pr-1")
    return median_seconds(lambda: resolve_variables(sources), reps)


def main() -> None:
    """Run the three measurements, print the table and optionally write the docs section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    reps, records = max(1, min(args.reps, 50)), max(1000, min(args.records, 200000))
    plain, masked = bench_redaction(reps, records)
    cached, naive, cached_reads, naive_reads = bench_vault(reps)
    resolve = bench_variables(reps)
    lines = [
        "## Secrets (`bench/secrets_redaction.py`)",
        "",
        f"Command: `.venv/bin/python bench/secrets_redaction.py --reps {reps} --records {records}"
        + (" --write-docs`" if args.write_docs else "`")
        + f"; medians of {reps} runs, one process.",
        "",
        "| measurement | A | B | B / A |",
        "|---|---|---|---|",
        f"| {records} log records: plain (A) vs redacting factory, 200 values (B) | "
        f"{plain * 1e6 / records:.1f} µs/record | {masked * 1e6 / records:.1f} µs/record | "
        f"{masked / plain:.2f} |",
        f"| 50 references on 10 Vault paths: one read per path (A, {cached_reads} reads) vs "
        f"per reference (B, {naive_reads} reads) | {cached * 1000:.1f} ms | "
        f"{naive * 1000:.1f} ms | {naive / cached:.2f} |",
        f"| resolve 1,000 variables (chained references, 100 secret) | {resolve * 1000:.1f} ms "
        "| | |",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write_docs:
        write_docs_section("secrets", report + "\n")


if __name__ == "__main__":
    main()
