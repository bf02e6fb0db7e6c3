"""Sweeps: many experiments from one file, searched with Optuna (`spec`: the sweep file;
`search`: the study and its trials, each an ordinary run folder; `job`: a sweep run from
its file to its written table and page)."""
