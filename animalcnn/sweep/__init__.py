"""Sweeps: many experiments from one file, searched with Optuna (`spec`: the sweep file;
`trials`: what a study's trials say; `search`: taking and running trials, each an
ordinary run folder; `storage`: where the study lives; `job`: a sweep run from its file
to its written table and page)."""
