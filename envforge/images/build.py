"""From a Git ref to an image in a registry: resolve, decide the Dockerfile, check the cache,
build and push. The ``image:build`` action and ``envforge image build`` both call
:func:`build_image`; everything it needs comes in as plain objects, so it runs without Prefect.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from envforge.connections import ConnectionSource
from envforge.core.paths import resolve_inside
from envforge.errors import ConfigurationError, ImageError
from envforge.git.publishing import redact_url
from envforge.images import cache
from envforge.images.builders import (
    BuildahBuilder,
    BuildRequest,
    BuildResult,
    ImageBuilder,
    Logger,
)
from envforge.images.dockerfile import STACKS_DIR, DockerfilePlan, plan_dockerfile
from envforge.images.git_auth import GitAuth
from envforge.images.registry_client import RegistryAccess, RegistryClient
from envforge.images.source import GitSourceCache, ResolvedSource
from envforge.services import Services, require_connections
from envforge.settings import EnvforgeSettings, load_settings

#: how long a run waits for another run on this machine building the same key
BUILD_LOCK_WAIT_SECONDS = 600.0
APP_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


@dataclass(frozen=True)
class ImageBuildSpec:
    """What to build: a repository at a ref, and how to find or make its Dockerfile."""

    repo_url: str
    ref: str
    app: str | None = None
    stack: str | None = None
    dockerfile: str | None = None
    context: str = "."
    build_args: Mapping[str, str] = field(default_factory=dict)
    stack_options: Mapping[str, Any] = field(default_factory=dict)
    base_image: str | None = None

    def app_name(self) -> str:
        name = self.app or default_app_name(self.repo_url)
        if not APP_NAME.match(name):
            raise ImageError(f"image name {name!r} is not a valid repository name: use "
                             "lowercase letters, digits and single '.', '_' or '-' between "
                             "them (set 'app')")
        return name


@dataclass(frozen=True)
class BuiltImage:
    """The result: the image by digest (what manifests should reference) and by tag."""

    image: str
    tagged: str
    digest: str
    commit: str
    ref_name: str
    cached: bool
    dockerfile: str
    stack: str | None
    timings: dict[str, float]
    #: the shared build this image was tagged from (nothing built), when it was
    reused_from: str | None = None


def default_app_name(url: str) -> str:
    """The image name a repository URL suggests: its last path part, lowercased."""
    last = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    return re.sub(r"[^a-z0-9]+", "-", last.lower()).strip("-") or "app"


def build_image(
    spec: ImageBuildSpec,
    registry: RegistryAccess,
    builder: ImageBuilder,
    sources: GitSourceCache,
    logger: Logger,
    git_auth: GitAuth | None = None,
    stacks_dir: Path = STACKS_DIR,
    before_push: Callable[[str], None] | None = None,
) -> BuiltImage:
    """Build ``spec`` unless the registry already has it; return the image by digest.
    ``before_push(tagged)`` runs before anything is pushed (the run ledger's record)."""
    app = spec.app_name()
    started = time.perf_counter()
    source = sources.resolve(spec.repo_url, spec.ref, git_auth)
    logger.info("%s %s is commit %s", redact_url(spec.repo_url), source.ref_name,
                source.short_commit)
    variables = dict(spec.stack_options)
    if spec.base_image:
        variables["base_image"] = spec.base_image
    with sources.open_tree(source) as view:
        plan = plan_dockerfile(view, spec.context, spec.dockerfile, spec.stack, variables,
                               stacks_dir)
    logger.info("Dockerfile: %s", plan.describe())
    key = cache.content_key(plan.content, spec.build_args, spec.context)
    tag = cache.image_tag(source.commit, key)
    repository = registry.repository(app)
    shared = registry.repository(cache.SHARED_REPOSITORY)
    tagged = f"{registry.image(app)}:{tag}"
    timings = {"resolve": source.fetch_seconds}

    def built(digest: str, cached: bool, reused_from: str | None = None) -> BuiltImage:
        timings["total"] = time.perf_counter() - started
        return BuiltImage(image=f"{registry.image(app)}@{digest}", tagged=tagged,
                          digest=digest, commit=source.commit, ref_name=source.ref_name,
                          cached=cached, dockerfile=plan.describe(), stack=plan.stack,
                          timings=timings, reused_from=reused_from)

    # One build of a key at a time on this worker: a second run for the same commit (another
    # pull request at it) waits for the first and then reuses its image instead of building.
    with _build_lock(sources.root / "locks", f"{registry.address}|{tag}", logger, tagged):
        with RegistryClient(registry) as client:
            # Also the early check that the registry answers and accepts our credentials:
            # a refusal here means nothing is built and nothing pushed.
            found = cache.lookup(client, repository, tag)
            timings["cache_lookup"] = found.seconds
            if found.digest is not None:
                logger.info("cached: %s already holds %s (commit %s, same Dockerfile and "
                            "build arguments); not building", registry.host, tagged,
                            source.short_commit)
                return built(found.digest, cached=True)
            if before_push is not None:
                before_push(tagged)
            reused = cache.reuse_shared(client, shared, repository, tag)
            if reused is not None:
                source_image = f"{registry.image(cache.SHARED_REPOSITORY)}:{tag}"
                logger.info("reused: %s was built already (commit %s, same Dockerfile and "
                            "build arguments, under another name); tagged %s from it, not "
                            "building", source_image, source.short_commit, tagged)
                return built(reused, cached=False, reused_from=source_image)
        result = _build_and_push(spec, source, plan, registry, builder, sources, tagged,
                                 logger)
        timings.update(build=result.build_seconds, push=result.push_seconds)
        with RegistryClient(registry) as client:
            problem = cache.share_build(client, repository, shared, tag)
        if problem:
            logger.warning("built %s but could not share it under %s (%s): other names "
                           "will build it again", tagged, shared, problem)
        return built(result.digest, cached=False)


def _build_and_push(spec: ImageBuildSpec, source: ResolvedSource, plan: DockerfilePlan,
                    registry: RegistryAccess, builder: ImageBuilder, sources: GitSourceCache,
                    tagged: str, logger: Logger) -> BuildResult:
    request = BuildRequest(
        image=tagged, registry=registry, dockerfile_text=plan.content,
        build_args=dict(spec.build_args),
        labels={"org.opencontainers.image.revision": source.commit,
                "org.opencontainers.image.source": redact_url(spec.repo_url),
                "io.envforge.ref": source.ref_name},
        source_url=spec.repo_url, commit=source.commit, ref_name=source.ref_name,
        context_path=spec.context,
    )
    work = sources.root / "worktrees"
    if getattr(builder, "needs_checkout", True):
        with sources.worktree(source, work) as checkout:
            # resolve_inside: a symlink in the repository must not make the host the context
            context_dir = resolve_inside(checkout, spec.context, "repository")
            return builder.build_and_push(_with_context(request, context_dir), logger)
    return builder.build_and_push(request, logger)


@contextmanager
def _build_lock(folder: Path, key: str, logger: Logger, what: str) -> Iterator[None]:
    """Hold the lock of one build key (a file under ``folder``), waiting at most
    BUILD_LOCK_WAIT_SECONDS for a build of it elsewhere on this machine; after that, build
    anyway (a second build of a key is waste, not harm: the registry keeps the last push)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".lock")
    with open(path, "w") as lock:
        deadline = time.monotonic() + BUILD_LOCK_WAIT_SECONDS
        held, announced = False, False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    logger.warning("waited %.0fs for another build of %s; building it too",
                                   BUILD_LOCK_WAIT_SECONDS, what)
                    break
                if not announced:
                    logger.info("another run is building %s; waiting to reuse it", what)
                    announced = True
                time.sleep(0.2)
        try:
            yield
        finally:
            if held:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _with_context(request: BuildRequest, context_dir: Path) -> BuildRequest:
    return replace(request, context_dir=context_dir)


# --- configuration shared by the action and the CLI -------------------------------------------

def source_cache(settings: EnvforgeSettings | None = None) -> GitSourceCache:
    """The mirror cache under ENVFORGE_HOME (or ENVFORGE_SOURCE_CACHE when set)."""
    settings = settings or load_settings()
    root = settings.images.source_cache or settings.cache_dir / "sources"
    return GitSourceCache(root)


def default_builder(settings: EnvforgeSettings | None = None) -> BuildahBuilder:
    """buildah with storage under ENVFORGE_BUILDAH_ROOT, else ENVFORGE_HOME/cache/buildah."""
    settings = settings or load_settings()
    root = settings.images.buildah_root or settings.cache_dir / "buildah"
    return BuildahBuilder(storage_root=root / "root", run_root=root / "run",
                          storage_driver=settings.images.buildah_driver)


def kaniko_builder(settings: EnvforgeSettings | None = None) -> ImageBuilder:
    """Kaniko Jobs in the cluster of KUBECONFIG (or the worker's own, in a pod), with
    ENVFORGE_KANIKO_NAMESPACE, ENVFORGE_KANIKO_REGISTRY_SECRET and ENVFORGE_KANIKO_GIT_SECRET."""
    from kubernetes import config as k8s_config

    from envforge.images.kaniko import KanikoJobBuilder, KanikoSettings
    from envforge.images.kaniko_run import KanikoJobRunner

    settings = settings or load_settings()
    try:
        if settings.cluster.service_host and not settings.cluster.kubeconfig:
            k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
            from kubernetes import client as k8s_client
            api_client = k8s_client.ApiClient()
        else:
            # the library reads KUBECONFIG once at import; read it now
            api_client = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=settings.cluster.kubeconfig)
    except k8s_config.ConfigException as e:
        raise ConfigurationError(f"the kaniko builder needs a cluster: {e} (set KUBECONFIG, "
                                 "or run the worker in a pod)") from e
    images = settings.images
    kaniko = KanikoSettings(namespace=images.kaniko_namespace,
                            registry_secret=images.kaniko_registry_secret,
                            git_secret=images.kaniko_git_secret)
    return KanikoJobBuilder(kaniko, submit=KanikoJobRunner(api_client))


def resolve_registry(block_name: str | None, address: str | None, tls_verify: bool = True,
                     *, services: Services | None = None) -> RegistryAccess:
    """A ContainerRegistry block by name (resolved by the services' connections), else an
    address without credentials (argument or ENVFORGE_REGISTRY)."""
    if block_name:
        return require_connections(services, f"registry block {block_name!r}").image_registry(
            block_name)
    settings = services.settings if services else load_settings()
    address = address or settings.images.registry
    if not address:
        raise ConfigurationError(
            "no registry to push to: name a ContainerRegistry block (registryBlock), give "
            "a registry address, or set ENVFORGE_REGISTRY")
    return RegistryAccess(address=address, tls_verify=tls_verify)


def resolve_git_auth(block_name: str | None, connections: ConnectionSource | None
                     ) -> GitAuth | None:
    """Credentials from a GitCredentials block, or None for public/local repositories."""
    if not block_name:
        return None
    if connections is None:
        raise ConfigurationError(
            f"GitCredentials block {block_name!r} is named but no connections were handed in; "
            "run through the flows or the envforge CLI")
    return connections.git_auth(block_name)
