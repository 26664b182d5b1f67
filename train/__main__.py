"""`python -m train <step>`: each pipeline step alone, or `quantize` for all of them."""

from train.cli import main

main()
