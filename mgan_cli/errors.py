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


class DirectionCountError(ConfigurationError):
    """More semantic directions were asked for than a generator has (its latent size): ``asked``, ``available``."""

    def __init__(self, asked: int, available: int) -> None:
        super().__init__(f"asked for {asked} directions, but there are {available} (the latent size)")
        self.asked = asked
        self.available = available


class RenderError(MganError):
    """A rendered image is not usable (e.g. an edit frame with NaN or infinite pixels); it fails its image."""


class OutputError(MganError):
    """The output folder (or a file in it, or the run store) cannot be created or written."""


class UnknownNameError(MganError, KeyError):
    """A name (a task, a generator, a metric, ...) is not registered; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InputValueError(MganError, ValueError):
    """A tensor, image or mask handed to the Python API has the wrong type, shape, dtype, value range or size;
    the message names what was expected. Nothing is resized or converted silently."""


class EncoderError(MganError):
    """An encoder (the learned warm start of :mod:`mgan_cli.encoder`) cannot be used: damaged or malformed files."""


class EncoderNotFoundError(EncoderError):
    """No encoder was trained for this generator; the message says how to train one."""


class ForeignEncoderError(EncoderError):
    """The encoder found was trained for another generator (a different sha256); the message says how to train one."""
