"""The media path: pfs:// files streamed to the browser through Label Studio's proxy URLs."""
