"""Run phlite: `python app.py` serves on 127.0.0.1:8000 with data in ./data."""

from phlite.cli import main

if __name__ == "__main__":
    main()
