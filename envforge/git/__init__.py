"""Publishing to Git repositories: the cached working copy with commit, push and retry, and
where in a repository a template's output may go (publish_scope)."""
