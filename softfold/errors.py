class UserError(Exception):
    """A mistake in the user's input. The CLI prints it as one line and exits non-zero."""
