"""One module per app, named by the app's label: `manage.py demo` runs those of installed apps."""
