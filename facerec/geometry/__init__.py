"""Face geometry shared by the pipeline stages and the store readers: landmark index sets and flips,
5-point alignment, head pose, Gaussian heatmaps and the face mask. Pure functions on arrays; imports
nothing from the pipeline, the store or the model side."""
