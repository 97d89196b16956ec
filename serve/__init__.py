"""Online: a Ray Serve application exposing the task handlers over HTTP."""
