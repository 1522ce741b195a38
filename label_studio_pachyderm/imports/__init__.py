"""The import flow: source storages read commits into tasks (sync, task files, versions, the watcher)."""
