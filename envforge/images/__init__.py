"""Application images: from a Git ref to an image in a registry, built once per commit.

    source.py           mirror cache per repository, ref resolution, worktree per build
    git_auth.py         git credentials through GIT_ASKPASS / GIT_SSH_COMMAND, never in URLs
    dockerfile.py       the repository's Dockerfile, or one rendered from a stack template
    cache.py            cache tag (commit + content key), registry lookup
    registry_client.py  the registry's /v2/ API: manifest digests, tags, deletes
    builders.py         ImageBuilder interface and BuildahBuilder
    kaniko.py           KanikoJobBuilder: the build as a Kubernetes Job (for in-cluster workers)
    kaniko_run.py       KanikoJobRunner: apply the Job, follow it, read the digest
    build.py            build_image(): resolve, plan, check cache, build, push
    actions.py          the image:build action
"""
