"""The views of a run: JSON and CSV tables, the HTML page and its thumbnails."""
