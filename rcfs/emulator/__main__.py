"""``python -m rcfs.emulator``: start the emulator process."""

from rcfs.emulator.server import main

if __name__ == "__main__":
    raise SystemExit(main())
