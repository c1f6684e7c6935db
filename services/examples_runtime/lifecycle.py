"""Process-wide lifecycle flags."""

import threading

# Set when SIGTERM arrives: /readyz answers 503 so no new traffic is routed here.
draining = threading.Event()
