"""Files: model files, bioimage.io packages, TIFF and zarr volumes, autosave, safe outputs."""
