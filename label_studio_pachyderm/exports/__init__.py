"""The export flow: annotations into commits (the outbox, its one writer per branch, formats, the sweep)."""
