"""One exception type for every user-facing failure: the CLI prints its message, no traceback."""


class SleegError(Exception):
    """A clear, user-facing error (bad file, bad input, bad configuration)."""


class MissingPackageError(SleegError, ImportError):
    """An optional package is not installed. A SleegError, so the CLI prints its one line; an
    ImportError (`name`: the package), so callers that probe for a feature see it as missing."""


class ModelLoadError(SleegError):
    """Loading a model failed because of one input: `field` names it (one of MODEL_FIELDS), so a
    caller can point at its own option for it (the CLI's `--weights`, the node's `weights`).

    >>> ModelLoadError("head", "head file not found: x.pt").field
    'head'
    """

    def __init__(self, field: str, message: str) -> None:
        if field not in MODEL_FIELDS:
            raise ValueError(f"unknown model field '{field}'; one of {', '.join(MODEL_FIELDS)}")
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # pickled across processes whole
        return type(self), (self.field, str(self))


# what a model is loaded from: the segmentor checkpoint, the OoD head file, the segmentor's name,
# the device and the torch.compile mode
MODEL_FIELDS = ("weights", "head", "segmentor", "device", "compile_mode")
