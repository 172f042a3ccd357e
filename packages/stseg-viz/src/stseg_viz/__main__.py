"""`python -m stseg_viz` runs the `stseg-viz` command line."""

from stseg_viz.cli import main

if __name__ == "__main__":
    main()
