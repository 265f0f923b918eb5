"""Services of the scale-out test: the image-build ones of tests/integration/images (a local
docker-registry, buildah storage, a busybox base image built FROM scratch), reused as they are."""

from tests.integration.images.conftest import (  # noqa: F401  (fixtures, found by name)
    base_image,
    buildah_storage,
    builder,
    registry,
)
