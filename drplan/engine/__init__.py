"""Running plans: prepare, schedule, run steps, undo, journal, events, signals and locks (drplan.runs uses them)."""
