//! Placeholder: the redis-server launcher is being written.
