"""The one error type the data readers raise: a message written for the user (path + fix)."""


class DatasetError(ValueError):
    """Bad or missing data; `str(err)` is one line naming the file and what to do."""
