"""``python -m bench``: the whole suite (see bench/__init__.py)."""
import sys

from .config import parse
from .runner import main

if __name__ == '__main__':
    sys.exit(main(parse()))
