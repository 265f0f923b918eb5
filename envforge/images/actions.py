"""image:build: build an application image from a Git ref and push it, unless already built.

Outputs the image by digest (what rendered manifests should reference) and whether it came from
the cache. Rollback deletes only the tag this run pushed (built, or tagged from the same build
under another name), and only when no other tag shares the image; a cached image was not made
by this run and is never deleted, nor is the shared copy other names reuse (envforge.images.cache).
In an environment's create the tag is recorded in the run's ledger before anything is pushed
and with its digest after, so a create killed before its commit is cleaned up the same way by
the next create or destroy (:func:`delete_pushed_image`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from envforge.actions.base import Action, ActionContext, ActionInput, ActionOutput
from envforge.core.paths import safe_relative
from envforge.errors import ConfigurationError, EnvforgeError
from envforge.images import cache
from envforge.images.build import (
    APP_NAME,
    ImageBuildSpec,
    build_image,
    default_builder,
    kaniko_builder,
    resolve_git_auth,
    resolve_registry,
    source_cache,
)
from envforge.images.dockerfile import check_stack_name
from envforge.images.git_auth import check_credentials_host
from envforge.images.registry_client import RegistryAccess, RegistryClient
from envforge.settings import load_settings

#: the run ledger's kind for an image tag a create pushes
LEDGER_KIND = "image"


def delete_pushed_image(registry: RegistryAccess, image_tag: str, digest: str) -> str:
    """Delete ``image_tag`` if it still points at ``digest`` (what the run pushed) and no other
    tag shares that image; what was done, as a line to log."""
    repository_and_tag = image_tag.split("/", 1)[1]
    repository, _, tag = repository_and_tag.rpartition(":")
    with RegistryClient(registry) as client:
        current = client.manifest_digest(repository, tag)
        if current != digest:
            return f"kept {image_tag}: the tag now points at {current or 'nothing'}, not what " \
                   "this run pushed"
        shared = cache.tags_sharing_digest(client, repository, digest, tag)
        if shared:
            return f"kept {image_tag}: tags {', '.join(shared)} share the image"
        client.delete_manifest(repository, digest)
    return f"deleted {image_tag} ({digest}), pushed by this run"


class ImageBuildInput(ActionInput):
    repoUrl: str = Field(description="Git URL of the application repository (no password in "
                         "it: use gitCredentialsBlock).")
    ref: str = Field("main", description="Branch, tag, pull request head (pull/N/head) or "
                     "commit to build.")
    app: str | None = Field(None, description="Image name; default: the repository's name.",
                            pattern=APP_NAME.pattern)
    stack: str | None = Field(None, description="Stack template (python, node, java-maven, "
                              "static) when the repository has no Dockerfile; default: "
                              "detected from its files.")
    dockerfile: str | None = Field(None, description="Path of the Dockerfile in the "
                                   "repository; default: Dockerfile or Containerfile in "
                                   "context, else one generated for the stack.")
    context: str = Field(".", description="Build context directory inside the repository.")
    buildArgs: dict[str, str] = Field(default_factory=dict,
                                      description="--build-arg values (not for secrets).")
    stackOptions: dict[str, Any] = Field(default_factory=dict,
                                         description="Variables of the stack template, e.g. "
                                         "port, command.")
    baseImage: str | None = Field(None, description="Base image of a generated Dockerfile.")
    registryBlock: str | None = Field(None, description="Name of a ContainerRegistry block.")
    registry: str | None = Field(None, description="Address of a registry without "
                                 "credentials; default ENVFORGE_REGISTRY.")
    tlsVerify: bool = Field(True, description="With 'registry': verify TLS (off also allows "
                            "plain HTTP).")
    gitCredentialsBlock: str | None = Field(None, description="Name of a GitCredentials block "
                                            "for private repositories.")
    builder: Literal["buildah", "kaniko"] = Field(
        "buildah", description="buildah on this worker, or a Kaniko Job in the cluster "
        "(KUBECONFIG; see docs/images.md).")


class ImageBuildOutput(ActionOutput):
    image: str = Field(description="host/repository@sha256:...: reference this in manifests.")
    imageTag: str = Field(description="host/repository:<commit>-<content key>.")
    digest: str
    commit: str
    cached: bool = Field(description="True when the registry already had it; nothing built.")
    reusedFrom: str | None = Field(None, description="The same build made under another "
                                   "name, which this image was tagged from (nothing built); "
                                   "the tag is this run's, so a rollback removes it.")
    stack: str | None = None
    dockerfile: str = Field(description="Where the Dockerfile came from.")


class ImageBuild(Action[ImageBuildInput, ImageBuildOutput]):
    id = "image:build"
    description = ("Build an application image from a Git ref (its Dockerfile or one generated "
                   "for its stack) and push it, unless the registry already has that build.")
    input_model = ImageBuildInput
    output_model = ImageBuildOutput
    supports_dry_run = False
    retries = 1
    examples = [
        {
            "id": "image",
            "name": "Build the application image",
            "action": "image:build",
            "input": {"repoUrl": "${{ parameters.repoUrl }}",
                      "ref": "${{ parameters.ref }}",
                      "app": "${{ parameters.name }}",
                      "registryBlock": "preview-registry"},
        }
    ]

    def run(self, ctx: ActionContext, params: ImageBuildInput) -> ImageBuildOutput:
        registry = resolve_registry(params.registryBlock, params.registry, params.tlsVerify,
                                    services=ctx.services)
        spec = ImageBuildSpec(
            repo_url=params.repoUrl, ref=params.ref, app=params.app, stack=params.stack,
            dockerfile=params.dockerfile, context=params.context,
            build_args=params.buildArgs, stack_options=params.stackOptions,
            base_image=params.baseImage,
        )
        settings = ctx.services.settings if ctx.services else load_settings()
        builder = (kaniko_builder(settings) if params.builder == "kaniko"
                   else default_builder(settings))
        step = f"step {ctx.step_id!r} (image:build)"
        # only the repositories the operator lets templates build (never the worker's disk)
        ctx.capabilities.image_sources.check(params.repoUrl, step, ConfigurationError)
        connections = ctx.services.connections if ctx.services else None
        git_auth = resolve_git_auth(params.gitCredentialsBlock, connections)
        if git_auth is not None:  # the template chose the URL: only to the block's own hosts
            check_credentials_host(git_auth, params.repoUrl, step)
        ledger = ctx.ledger
        where = {"registryBlock": params.registryBlock, "registry": params.registry,
                 "tlsVerify": params.tlsVerify}
        built = build_image(spec, registry, builder, source_cache(settings), ctx.logger,
                            git_auth=git_auth,
                            before_push=lambda tagged: ledger.record(
                                LEDGER_KIND, "intended", tag=tagged, **where))
        if not built.cached:
            ledger.record(LEDGER_KIND, "made", tag=built.tagged, digest=built.digest, **where)
        return ImageBuildOutput(image=built.image, imageTag=built.tagged, digest=built.digest,
                                commit=built.commit, cached=built.cached, stack=built.stack,
                                dockerfile=built.dockerfile, reusedFrom=built.reused_from)

    def rollback(self, ctx: ActionContext, params: ImageBuildInput,
                 output: ImageBuildOutput) -> None:
        if output.cached:
            ctx.logger.info("kept %s: it was in the registry before this run", output.imageTag)
            return
        registry = resolve_registry(params.registryBlock, params.registry, params.tlsVerify,
                                    services=ctx.services)
        ctx.logger.info("%s", delete_pushed_image(registry, output.imageTag, output.digest))
        ctx.ledger.record(LEDGER_KIND, "removed", tag=output.imageTag)

    def check(self, params: ImageBuildInput, template_dir: Path) -> list[str]:
        problems: list[str] = []
        if params.stack is not None and "${{" not in params.stack:
            try:
                check_stack_name(params.stack)
            except EnvforgeError as e:
                problems.append(str(e))
        for name, value in (("context", params.context), ("dockerfile", params.dockerfile)):
            if value is not None and "${{" not in value:
                try:
                    safe_relative(value, "repository")
                except EnvforgeError as e:
                    problems.append(f"{name}: {e}")
        if params.registryBlock is None and params.registry is None \
                and not load_settings().images.registry:
            problems.append("neither registryBlock nor registry is set: the image goes to "
                            "ENVFORGE_REGISTRY, which must then be set on the worker")
        return problems


ACTIONS: list[type[Action[Any, Any]]] = [ImageBuild]
