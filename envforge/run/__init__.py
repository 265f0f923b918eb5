"""Running a template: the runner, its step graph, its workspace and `templates validate`."""
