"""Distribution API v2 client: authentication, manifests and blobs."""
