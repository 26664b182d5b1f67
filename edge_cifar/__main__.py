"""`python -m edge_cifar`: the same as the `edge-cifar` command."""

from edge_cifar.cli import main

main()
