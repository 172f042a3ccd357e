"""`python -m ssen_instance` runs the `ssen-instance` command line."""

from ssen_instance.cli import main

if __name__ == "__main__":
    main()
