"""Landing pages (``/l/<slug>``) and fast redirects (``/r/<slug>``): where clicks are minted."""
