"""mxshift: move an organisation's mail between IMAP providers, nothing lost, nothing duplicated."""

__version__ = "0.1.0"
