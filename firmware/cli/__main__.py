"""`python -m firmware.cli ...`, as `gatebox run` starts its queue manager child."""

from firmware.cli import main

main()
