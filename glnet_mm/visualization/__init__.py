"""GLMix's semantic slots drawn as pictures (:mod:`.slots`, OpenCV)."""
