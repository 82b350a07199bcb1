"""Typed exceptions of the library. The command line turns each into one clear line and a non-zero exit."""


class MganError(Exception):
    """Base class of every error mgan raises on purpose (bad input, missing weights, bad presets)."""


class WeightsError(MganError):
    """A weight file is missing, cannot be fetched, or does not match its pinned checksum."""


class WeightsNotFoundError(WeightsError):
    """No copy of a weight file could be found or fetched; the message says where to get it."""


class ChecksumError(WeightsError):
    """A weight file's sha256 differs from the pinned one."""


class UnsafePickleError(WeightsError):
    """A pickle asked for something outside the allow-list (it could run code), so it was refused."""


class UnknownFormatError(WeightsError):
    """A weight file's format is not one mgan can read."""


class PresetError(MganError):
    """A preset is unknown, malformed, or has a key or value mgan does not accept."""


class ImageInputError(MganError):
    """An input image (or mask, or reference) cannot be used: unreadable, wrong size, wrong mode."""


class ConfigurationError(MganError):
    """A combination of settings cannot work (e.g. a layer out of range, a scale that does not divide)."""


class RenderError(MganError):
    """A rendered image is not usable (e.g. an edit frame with NaN or infinite pixels); it fails its image."""


class OutputError(MganError):
    """The output folder (or a file in it, or the run store) cannot be created or written."""


class UnknownNameError(MganError, KeyError):
    """A name (a task, a generator, a metric, ...) is not registered; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
