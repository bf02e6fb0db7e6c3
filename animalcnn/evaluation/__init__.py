"""Scoring trained runs: on a labelled split (`evaluate`, `scoring`) and on new images
(`predict`)."""
