"""Qt services (QtCore only): engine client, monitor, background tasks."""
