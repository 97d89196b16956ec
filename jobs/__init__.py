"""Offline annotation: Ray Data reads -> map_batches through a handler actor pool -> writes."""
