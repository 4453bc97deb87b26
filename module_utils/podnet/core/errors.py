"""Typed errors of podnet. Library code raises them; only a module's main()
turns one into fail_json, so every message names the object and field."""


class PodnetError(Exception):
    """Base of all podnet errors: `subject` names the object at fault."""

    def __init__(self, subject, message):
        super().__init__('%s: %s' % (subject, message))
        self.subject, self.message = subject, message


class SpecError(PodnetError):
    """Invalid input (inventory, manifest): raised before anything changes."""


class LabError(PodnetError):
    """A lab host or link could not be created, checked or removed."""
