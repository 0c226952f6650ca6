"""Code shared by plugins (a plugin never imports another plugin)."""
