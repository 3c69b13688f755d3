"""The headless core: arrays in, arrays and progress events out; no Qt, no napari, no files."""
