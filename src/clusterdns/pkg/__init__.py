"""Code shared by several plugins (a plugin never imports another plugin)."""
