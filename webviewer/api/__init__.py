"""The CT API: catalog (``catalog``), archive streaming (``app``), network emulation (``throttle``) and the
synthetic sample CTs (``samples``). No trame import here."""
