"""Qt dock widgets for napari. Only this package imports qtpy, napari and magicgui."""
