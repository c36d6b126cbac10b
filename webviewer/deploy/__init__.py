"""The multi-user demo deployment: one `webviewer --server` process per visitor, started by wslink's launcher,
behind Apache httpd (as Kitware's trame Docker image does). No trame import: these modules only write
configuration files and supervise processes."""
