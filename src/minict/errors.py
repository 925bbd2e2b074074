"""Exception tree of minict.

Every error that minict reports to a user derives from MinictError, and the CLI
prints its message as one line (with a traceback only under --debug)::

    MinictError
    ├── InvalidArgument      a reference, name, flag or file is malformed
    ├── NotFound             an image, container, blob or credential is missing
    ├── AlreadyExists        a name is taken
    ├── FailedPrecondition   the state does not allow the operation (a running container)
    ├── RegistryError        a registry returned an error or broke the protocol
    │   └── AuthError        authentication failed or is missing
    ├── ContentError         fetched content does not match its digest or size
    └── LayerError           a layer archive is invalid or tries to leave its snapshot
"""


class MinictError(Exception):
    """Base of all errors that minict reports to the user."""

    #: Process exit status for the CLI.
    exit_code = 1


class InvalidArgument(MinictError):
    """Raised when a reference, name, flag or input file is malformed."""


class NotFound(MinictError):
    """Raised when an image, container, blob or credential does not exist."""


class AlreadyExists(MinictError):
    """Raised when a name or record is already taken."""


class FailedPrecondition(MinictError):
    """Raised when the current state does not allow the operation."""


class RegistryError(MinictError):
    """Raised when a registry returns an error or violates the Distribution API."""


class AuthError(RegistryError):
    """Raised when a registry rejects or requires credentials."""


class ContentError(MinictError):
    """Raised when content does not match its expected digest or size."""


class LayerError(MinictError):
    """Raised when a layer archive is malformed or would write outside its snapshot."""
