"""Privacy audit: membership inference, self-influence and memorisation of training records."""
