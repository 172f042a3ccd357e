"""`python -m stseg_data` runs the `stseg-data` command line."""

from stseg_data.cli import main

if __name__ == "__main__":
    main()
