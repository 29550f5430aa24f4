"""The supervisor web page: static HTML/CSS/JS served by the app itself, no build step."""
