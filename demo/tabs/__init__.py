"""The app's tabs, one module each: its components and its handlers (see demo.session.Tab)."""
