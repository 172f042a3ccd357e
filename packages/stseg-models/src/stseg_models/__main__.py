"""`python -m stseg_models` runs the `stseg-models` command line."""

from stseg_models.cli import main

if __name__ == "__main__":
    main()
