"""Developer scripts: `make run` (run.sh, seed_demo.py) and `make demo` (demo.py)."""
