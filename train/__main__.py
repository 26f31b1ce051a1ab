"""`python -m makemore.train ...` is `mm-train ...` (also under torchrun: `torchrun ... -m makemore.train`)."""

from makemore.train.cli import main

if __name__ == "__main__":
    main()
