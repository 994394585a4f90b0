"""fairseq tasks of the plugin (fairseq imports this folder of a --user-dir by itself)."""
