"""The runtime's error for a model it cannot use: its own module, so that the modules which read
a model file (interpreter, metadata, model cards) share it without importing each other."""


class ModelError(ValueError):
    """A model file that is missing, corrupt, not a TFLite model, or not what a command needs."""
