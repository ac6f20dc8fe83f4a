"""The domain: no request or response objects, `now` passed in."""
