"""`python -m stseg_train` runs the `stseg-train` command line."""

from stseg_train.cli import main

if __name__ == "__main__":
    main()
