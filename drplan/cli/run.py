"""Commands: placeholder until implemented."""

COMMANDS: tuple[object, ...] = ()
