"""A package only the warm runner of the stale-import test preloads: that test moves this file's
mtime to show edited code is never run from a stale import, without making the warm runners of
tests running at the same time on other workers (which never import it) see stale code."""
