"""The PySide6 desktop app. The only package that imports Qt; it reaches the engine through a worker thread."""
