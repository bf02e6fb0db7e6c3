"""Figures, a leaf any layer may draw with: `charts` (every chart, defined once and drawn as
PNG with matplotlib or interactive with plotly) and `gallery` (figures of images: the
mistakes gallery, Grad-CAM overlays). They take records and arrays and import nothing of
training, evaluation or reporting."""
