"""`python -m keras_structopt`: the `keras-structopt` command."""

import sys

from keras_structopt._cli import main

if __name__ == "__main__":
    sys.exit(main())
