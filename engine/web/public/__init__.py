"""What anyone may open: the landing page and forward form, unsubscribe links, share links."""
