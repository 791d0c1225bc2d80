"""`make bench`: runs every benchmark script in bench/ (each prints its figures and writes
bench/results/<name>.json)."""
import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = {"__init__.py", "harness.py", "run_all.py"}


def main():
    failed = []
    for path in sorted(glob.glob(os.path.join(HERE, "*.py"))):
        if os.path.basename(path) in SKIP:
            continue
        module = "bench." + os.path.basename(path)[:-3]
        print(f"== {module}", flush=True)
        if subprocess.call([sys.executable, "-m", module], cwd=os.path.dirname(HERE)) != 0:
            failed.append(module)
    if failed:
        print("failed:", ", ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
