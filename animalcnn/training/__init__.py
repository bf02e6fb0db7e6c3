"""Training a config into a run folder: the process's runtime (`runtime`), the phases of
a transfer strategy (`phases`), callbacks (`callbacks`), the resume state (`resume`), the
training session (`session`) and several configs in turn (`runner`)."""
