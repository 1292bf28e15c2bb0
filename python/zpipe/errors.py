"""The exceptions the zpipe package raises or exports."""


class Retry(Exception):
    """Raise it in a task to have zpipe run the task again (up to the job's
    max_attempts); any exception with a true `retryable` attribute does the
    same. The python plugin marks such a failure retryable."""

    retryable = True


class RemoteError(Exception):
    """A task failed and its exception could not be rebuilt here: its type
    does not unpickle in the caller, or the failure was zpipe's (a crash,
    a deadline, an import error in the plugin). `type_name`, `message` and
    `cause` (zpipe's failure cause, e.g. python_exception, SIGSEGV,
    timeout) say what happened; the remote traceback is its __cause__."""

    def __init__(self, type_name, message, cause=""):
        super().__init__("%s: %s" % (type_name, message) if type_name
                         else message)
        self.type_name = type_name
        self.message = message
        self.cause = cause


class RemoteTraceback(Exception):
    """The traceback text of a task's exception, as its __cause__ (like
    multiprocessing.pool.RemoteTraceback)."""

    def __init__(self, tb):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb


def with_remote_traceback(exc, tb):
    """Returns exc with the remote traceback text tb as its __cause__."""
    if tb:
        exc.__cause__ = RemoteTraceback('\n"""\n%s"""' % tb)
    return exc
