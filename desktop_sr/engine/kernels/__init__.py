"""The engine's numerical building blocks shared by the model families: resizing and the small-photo rule
(``processing``, ``small_photo``), tiles and their blending (``tiling``), feature statistics (``moments``)."""
