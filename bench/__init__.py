"""OpenFnF benchmarks: `python -m bench` runs the side-by-side harness (see bench/README.md)."""
